"""Datasets: the embedded ShapeTex default, CIFAR-10/100 and ImageFolder from a local path."""
