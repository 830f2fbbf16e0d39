"""Analyses of trained runs: the attention-variance study (HiViT Section 3.2, Fig. 2)."""
