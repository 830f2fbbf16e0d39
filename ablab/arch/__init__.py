"""Architectures as data: the spec space, its kinds, presets, the builder, descriptions and a profile's shrink."""
