"""Running recipes: the local runner, the submitit executor and the terminal's progress display."""
