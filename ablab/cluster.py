"""What each job of `ablab run --executor submitit` asks the scheduler for: a recipe's `cluster:` block, which
`ablab run`'s options of the same names override."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass(frozen=True)
class ClusterConfig:
    """Resources of one (step, seed) job; every job of a submission gets the same, so they go out as one array."""

    cluster: Literal["slurm", "local"] = "slurm"  # local: submitit's local executor (this machine, no scheduler)
    partition: str = ""  # SLURM partition; "" leaves it to the cluster's default
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1  # processes per node; above 1 each task is one torch.distributed (DDP) rank
    cpus_per_task: Optional[int] = None  # None: the cluster's default
    mem_gb: Optional[float] = None  # memory per node; None: the cluster's default
    timeout_min: int = 24 * 60  # a job reaching it is requeued and resumes from its last epoch checkpoint
    array_parallelism: int = 256  # how many jobs of the array SLURM runs at once

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every value out of range, so recipes report them all with their lines."""
        out = []
        for name in ("nodes", "tasks_per_node", "cpus_per_task", "timeout_min", "array_parallelism"):
            value = getattr(self, name)
            if value is not None and value < 1:
                out.append((name, f"must be at least 1, got {value}"))
        if self.gpus_per_node < 0:
            out.append(("gpus_per_node", f"must not be negative, got {self.gpus_per_node}"))
        if self.mem_gb is not None and self.mem_gb <= 0:
            out.append(("mem_gb", f"must be positive, got {self.mem_gb}"))
        if self.cluster == "local" and self.nodes > 1:
            out.append(("nodes", f"the local cluster is this one machine: nodes must be 1, got {self.nodes}"))
        return out
