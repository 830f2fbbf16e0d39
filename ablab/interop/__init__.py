"""Weights in and out of other code bases' formats (timm's state dicts)."""
