"""A short identity of model weights, so a table can say which model it was measured on."""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch


def model_fingerprint(tensors: Mapping[str, torch.Tensor], samples: int = 16) -> str:
    """16 hex digits identifying model weights: every tensor's name, shape, dtype and a few values.

    Values are sampled (at most `samples` a tensor, evenly strided) so that a multi-GB model
    fingerprints in well under a second. The same weights in another precision give another
    fingerprint.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        flat = tensors[name].detach().reshape(-1)
        picks = flat[:: max(1, flat.numel() // samples)][:samples]
        digest.update(f"{name}|{tuple(tensors[name].shape)}|{flat.dtype}|".encode())
        digest.update(picks.to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()[:16]
