"""Measurements of a built model: exact parameters, FLOPs (fvcore, attention included), throughput."""
