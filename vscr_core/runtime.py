"""Where and how a run computes: the device, the autocast precision and memory layout, and the
seeds of every random source. Training, the viewpoint classifier and the explanations share
these, so a CPU run and a GPU run differ only by `device`."""

from __future__ import annotations

import contextlib
import functools
import random
import subprocess

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available on this machine")
    return device


def amp_settings(device: torch.device, precision: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, use channels-last). "auto" is bf16 + channels-last on
    CPU (bf16 units make a ResNet step 1.6-3.4x faster than fp32 here) and bf16 (or fp16 where
    the GPU lacks bf16) on CUDA."""
    if precision == "fp32":
        return None, False
    if precision == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16, True
        return torch.bfloat16, True
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision], True


@functools.cache
def describe_hardware(device: torch.device) -> str:
    """What computes on `device`, as a log records it: the GPU's name, or lscpu's model name with
    the bf16 units the "auto" precision relies on (their presence sets a CPU's speed, and
    whether AMX or AVX-512 does the bf16 products sets its rounding)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags] or ["no bf16 units"]
    return f"{fields.get('Model name', 'unknown').strip()} ({' '.join(bf16)})"


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
