"""Engines: one resumable epoch loop (loop.py) under supervised training (supervised.py) and masked image modeling
pre-training (pretrain.py)."""
