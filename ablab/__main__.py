"""`python -m ablab ...`: the command line, e.g. under `torchrun --nproc_per_node 2 -m ablab run RECIPE`."""

from .cli import main

main()
