"""Datasets: images (the embedded ShapeTex default, CIFAR-10/100 and ImageFolder from a local path) and clips
for video models (the embedded ShapeClips, Kinetics-style video folders from a local path)."""
