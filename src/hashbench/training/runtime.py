"""Where and how training runs: the device, the precision, data workers, checkpoints and the processes of a
distributed run. Read from params.yaml's top-level keys (RUNTIME_SCHEMA) by the train and encode stages; library
callers get `Runtime()`: one CPU process, float32, no workers, no checkpoints.
"""
from __future__ import annotations

import os
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Param
from ..errors import HashbenchError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RUNTIME_SCHEMA = {
    "device": Param("auto", str),  # auto | cpu | cuda | cuda:N
    "precision": Param("auto", str, choices=PRECISIONS),  # auto: bf16 (else fp16) on CUDA, fp32 on CPU
    "workers": Param(2, int, ge=0),  # DataLoader worker processes (0: load in the training process)
    "nproc": Param(1, int, ge=1),  # training processes (torchrun); the stage starts torchrun itself when > 1
    "checkpoint_every": Param(None, int, ge=1, nullable=True),  # also checkpoint every N steps (null: epochs only)
}
# git- and DVC-ignored, so DVC never deletes it before a stage runs; HASHBENCH_CHECKPOINTS (an absolute path) lets
# queued or --temp experiments, which run in temporary copies of the repository, keep theirs across attempts
CHECKPOINTS = Path(os.environ.get("HASHBENCH_CHECKPOINTS", ".hashbench/checkpoints"))


@dataclass
class Runtime:
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    workers: int = 0
    rank: int = 0
    world_size: int = 1
    checkpoints: Path | None = None  # None: no checkpoints (library use)
    checkpoint_every: int | None = None
    progress: bool = True
    log: object = None  # log(row, images_per_second) after every epoch, e.g. training.live.DvcLiveLog

    @property
    def main(self) -> bool:
        """Whether this process writes outputs, logs and shows progress (rank 0)."""
        return self.rank == 0

    def autocast(self):
        """Mixed precision for the networks' forward passes (a no-op in float32)."""
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def describe(self) -> dict:
        """What ran, for metrics/train.json."""
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return {"device": name, "precision": self.precision, "world_size": self.world_size, "workers": self.workers,
                "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                "cuda": torch.version.cuda if self.device.type == "cuda" else None}


def place(x, device: torch.device):
    """A module or batch tensor on `device`, images (4-D) in channels-last memory: PyTorch's NHWC convolution,
    pooling and BatchNorm kernels are the faster ones on CPUs (about 2x for smallcnn) and on GPU tensor cores."""
    if isinstance(x, torch.nn.Module):
        return x.to(device, memory_format=torch.channels_last)
    if x.dim() == 4 and x.is_floating_point():
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def resolve_device(value: str, local_rank: int | None = None) -> torch.device:
    """`auto` (CUDA when a GPU is visible, else CPU), `cpu`, `cuda`, `cuda:N`; one line when it cannot be used."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise HashbenchError(f"device: {value!r} is not allowed; use auto, cpu, cuda or cuda:N")
    has_cuda = torch.cuda.is_available()
    if value == "cpu" or (value == "auto" and not has_cuda):
        return torch.device("cpu")
    if not has_cuda:
        raise HashbenchError(f"device: {value!r} is not allowed here: PyTorch sees no CUDA GPU "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use auto or cpu")
    if value.startswith("cuda:"):
        if local_rank is not None:
            raise HashbenchError(f"device: {value!r} is not allowed under torchrun (each process takes the GPU of its "
                                 f"local rank); use cuda or auto")
        index = int(value.split(":")[1])
        if index >= torch.cuda.device_count():
            raise HashbenchError(f"device: {value!r} is not allowed; this machine has {torch.cuda.device_count()} "
                                 f"GPU(s): use cuda:0..cuda:{torch.cuda.device_count() - 1}")
        return torch.device(value)
    return torch.device("cuda", local_rank or 0)


def resolve_precision(value: str, device: torch.device) -> str:
    if device.type == "cpu":
        if value in ("bf16", "fp16"):
            raise HashbenchError(f"precision: {value!r} is not allowed on the CPU; use auto or fp32 (mixed precision "
                                 f"runs on CUDA)")
        return "fp32"
    if value == "auto":  # bf16 where the GPU has it natively (Ampere on); emulated bf16 is slow: fp16 + a scaler
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return value


def distributed_env() -> tuple[int, int, int | None]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, None) outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def from_params(p: dict, checkpoints: Path | None = CHECKPOINTS) -> Runtime:
    """The runtime for validated top-level params `p` (see RUNTIME_SCHEMA). Under torchrun it joins the process
    group: NCCL on CUDA, gloo on the CPU."""
    rank, world, local_rank = distributed_env()
    device = resolve_device(p["device"], local_rank)
    if device.type == "cuda":  # the pin-memory thread and new tensors without a device use the current GPU
        torch.cuda.set_device(device)
    precision = resolve_precision(p["precision"], device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device=device, precision=precision, workers=p["workers"], rank=rank, world_size=world,
                   checkpoints=checkpoints, checkpoint_every=p["checkpoint_every"], progress=rank == 0)


def runtime_params(params: dict, checkpoints: Path | None = CHECKPOINTS) -> Runtime:
    """The runtime that params.yaml's top-level keys ask for (each checked, one line when not allowed)."""
    return from_params(validate_runtime(params), checkpoints)


def validate_runtime(params: dict) -> dict:
    return {key: spec.check(key, params.get(key, spec.default)) for key, spec in RUNTIME_SCHEMA.items()}


def note(message: str) -> None:
    """One line on stderr from the main process (e.g. the device chosen by `auto`, a resumed checkpoint)."""
    print(message, file=sys.stderr, flush=True)
