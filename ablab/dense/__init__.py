"""Dense prediction: every step of a transition as a backbone of multi-scale feature maps (strides 4 to 32) for
semantic segmentation and detection heads."""
