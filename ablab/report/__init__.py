"""Reports regenerated from what runs wrote: tables (`tables`, `table`, `latex`, `columns`) and figures (`figures`:
`waterfall`, `accuracy`, `efficiency`), numbers written with significant digits (`numbers`) and throughput compared
only where it was measured alike (`measured`)."""
