"""The unit throughput is counted in: images per second for image models, clips per second for clip models
(`ArchSpec.frames` > 1), as `ablab run` measures and prints it (the rule is the spec's, `arch.spec.throughput_unit`).
Decided once per table or figure from the models of its rows, so that every header, label and caption of it says
the same; here too how the unit is spelled on axes."""

from __future__ import annotations

from ..arch.spec import CLIPS, IMAGES, throughput_unit

__all__ = ["CLIPS", "IMAGES", "UNITS", "spelled", "throughput_unit"]

UNITS = (IMAGES, CLIPS)
ITEM = {IMAGES: "image", CLIPS: "clip"}  # what one unit counts, for 'GFLOPs per clip' and the unit spelled out


def spelled(unit: str) -> str:
    """The unit written out for an axis label: 'images/s' for 'im/s', 'clips/s' as it is."""
    return f"{ITEM[unit]}s/s"
