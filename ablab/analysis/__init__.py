"""Analyses of trained runs: the attention-variance study (HiViT Section 3.2, Fig. 2); and of a spec alone:
GreenMIM's optimal group size per windowed stage under random masks (`group_size`, Fig. 4)."""
