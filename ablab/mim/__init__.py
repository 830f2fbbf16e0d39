"""Masked image modeling: mask units, sparse MAE, dense SimMIM, GreenMIM group window attention."""
