"""Supervised training and evaluation of one step's model."""
