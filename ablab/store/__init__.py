"""The results store: where runs live (paths), how they are keyed (keys), the summary.csv schema (summary) and
where each run stands (state). Defined once, used by the runner, `ablab status`, the report and its figures."""
