"""Reports regenerated from what runs wrote: tables now, figures with the reporting issue."""
