"""Where a model runs and at which precision, named without importing torch."""

from __future__ import annotations

from enum import Enum

from clipsearch.errors import UsageError


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"  # OpenVINO on CPUs with AVX-512 BF16 or AMX
    int8 = "int8"


class Engine(str, Enum):
    auto = "auto"  # OpenVINO on a CPU when it is installed and no GPU is in sight, else torch
    torch = "torch"
    openvino = "openvino"


DEFAULT_BATCH_SIZE = {"cpu": 32, "cuda": 256, "mps": 64}


def pick_device(requested: Device | str = Device.auto) -> str:
    """The torch device for a request: auto picks cuda, then mps, then the CPU."""
    import torch

    requested = Device(requested)
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested is Device.auto:
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested is Device.cuda and not cuda:
        raise UsageError("--device cuda: no CUDA GPU is visible to torch (is this a CPU-only torch build?)")
    if requested is Device.mps and not mps:
        raise UsageError("--device mps: Apple's Metal backend is not available on this machine")
    return requested.value


def torch_quantisation_wanted(precision: Precision | str, device: str, current: str) -> Precision | None:
    """What `use_precision` asks of a torch encoder: None when nothing is to change (not on a CPU, fp32, or already
    int8), else auto or int8. Every torch backend refuses bf16 (OpenVINO's) and int8 off a CPU alike."""
    precision = Precision(precision)
    if precision is Precision.bf16:
        raise UsageError("--precision bf16 runs on OpenVINO (--engine openvino): torch's bf16 on a CPU is slower "
                         "than its fp32")
    if precision is Precision.int8 and device != "cpu":
        raise UsageError(f"--precision int8 runs on the CPU only, not on {device}")
    if device != "cpu" or precision is Precision.fp32 or current == "int8":
        return None
    return precision
