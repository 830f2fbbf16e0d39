"""Where a figure was measured: the device by name, and on CUDA its capability, memory, driver, CUDA and cuDNN;
the machine's fingerprint (host, processor, CPUs); plus the software that ran it, the code's git commit included.
Recorded beside every measurement and training run, since each of them moves the numbers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import torch


def device_name(device: str | torch.device) -> str:
    """A readable device name: the GPU's product name, or 'cpu (N threads)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def device_record(device: str | torch.device) -> dict[str, Any]:
    """The device's kind and name; on CUDA also compute capability, memory, driver, CUDA and cuDNN versions;
    on the CPU the processor's model name."""
    device = torch.device(device)
    if device.type != "cuda":
        return {"device_kind": "cpu", "device": device_name(device), "processor": _cpu_model()}
    props = torch.cuda.get_device_properties(device)
    return {
        "device_kind": "cuda", "device": props.name, "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1), "driver": nvidia_driver(device.index or 0),
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
    }


def fingerprint() -> str:
    """Which machine measured, e.g. 'vm (AMD EPYC, 2 CPUs)': host name, processor model and CPU count. Two devices
    of one name ('cpu (2 threads)', one GPU model) on different machines give different fingerprints."""
    return f"{socket.gethostname()} ({_cpu_model()}, {os.cpu_count()} CPUs)"


def software_versions() -> dict[str, str]:
    """Python, torch, timm and fvcore versions ('not installed' where a package is absent)."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("timm", "fvcore"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def code_version() -> dict[str, Any]:
    """The git commit of the ablab checkout that runs, and whether its tracked files differ from it (`dirty`); both
    None where ablab is not run from a git checkout (an installed wheel) or git is absent."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> Optional[str]:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD") if (root / ".git").exists() else None
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance() -> dict[str, Any]:
    """What code ran: the package versions (`software_versions`) and ablab's commit (`code_version`)."""
    return {**software_versions(), "ablab": code_version()}


def nvidia_driver(index: int = 0) -> Optional[str]:
    """The NVIDIA driver version from nvidia-smi, or None where nvidia-smi is absent or fails."""
    return nvidia_smi(f"--id={index}", "--query-gpu=driver_version", "--format=csv,noheader")


def nvidia_smi(*args: str) -> Optional[str]:
    """nvidia-smi's output for `args`, stripped; None where nvidia-smi is absent, fails or prints nothing."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else what the platform module says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
