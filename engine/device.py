"""Choosing the torch device and thread count, and drawing random numbers for a device."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; anything else is checked and used as is."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here: use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but MPS is not available here: use --device cpu or auto")
    return device


def describe_device(device: torch.device) -> str:
    """A short human-readable name, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device.type


def set_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads deliberately: small models lose speed to oversubscription.

    n=None uses LATENT_LAB_THREADS or the number of usable cores.
    """
    if n is None:
        n = int(os.environ.get("LATENT_LAB_THREADS", "0")) or len(os.sched_getaffinity(0))
    n = max(1, n)
    torch.set_num_threads(n)
    return n


def random_tensor(shape, generator: torch.Generator | None, device: torch.device | str,
                  dtype: torch.dtype = torch.float32, normal: bool = False) -> torch.Tensor:
    """Uniform (or normal) numbers drawn with `generator` wherever it lives, then moved to `device`.

    A CPU generator cannot fill a CUDA tensor: drawing on the generator's own device keeps a seeded
    run the same whichever device it trains on.
    """
    fn = torch.randn if normal else torch.rand
    if generator is None:
        return fn(shape, device=device, dtype=dtype)
    return fn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
