"""A short identity of model weights, so a table can say which model it was measured on."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Mapping

import torch

# Marks a tensor whose values could not be read (meta / offloaded / quantised wrapper tensors).
UNREAD = b"<values not read>"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """`value`: 16 hex digits; `unread`: names of the tensors fingerprinted by name, shape and dtype only."""

    value: str
    unread: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.unread

    def note(self) -> str:
        """'' when every tensor's values were read; otherwise what the fingerprint stands on."""
        if self.complete:
            return ""
        first = ", ".join(self.unread[:3]) + (", ..." if len(self.unread) > 3 else "")
        return (f"the values of {len(self.unread)} weight tensor(s) could not be read (quantised or offloaded: "
                f"{first}); the model fingerprint {self.value} uses their names, shapes and dtypes only")


def _sampled_values(tensor: torch.Tensor, samples: int) -> bytes:
    """At most `samples` evenly strided values of `tensor` as float32 bytes; raises when they cannot be read.

    A tensor subclass (a quantised tensor, a GGUF tensor) is read through its storage as a plain
    tensor (so GGUF's packed bytes are sampled as stored) — never dequantised in full.
    """
    data = tensor.detach()
    if type(data) not in (torch.Tensor, torch.nn.Parameter):
        data = data.as_subclass(torch.Tensor)
    if data.device.type == "meta":
        raise ValueError("meta tensor")
    flat = data.reshape(-1)
    picks = flat[:: max(1, flat.numel() // samples)][:samples]
    values = picks.to("cpu", torch.float32)
    if type(values) is not torch.Tensor or values.numel() != picks.numel():
        raise ValueError("not a plain tensor")
    return values.numpy().tobytes()


def fingerprint_weights(tensors: Mapping[str, torch.Tensor], samples: int = 16) -> Fingerprint:
    """Like `model_fingerprint`, also naming the tensors whose values could not be read (never raises for them)."""
    digest = hashlib.sha256()
    unread = []
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        try:
            digest.update(_sampled_values(tensor, samples))
        except Exception:  # noqa: BLE001 - any unreadable tensor: fingerprint it by name, shape and dtype
            digest.update(UNREAD)
            unread.append(name)
    return Fingerprint(digest.hexdigest()[:16], tuple(unread))


def model_fingerprint(tensors: Mapping[str, torch.Tensor], samples: int = 16) -> str:
    """16 hex digits identifying model weights: every tensor's name, shape, dtype and a few values.

    Values are sampled (at most `samples` a tensor, evenly strided) so that a multi-GB model
    fingerprints in well under a second. The same weights in another precision give another
    fingerprint. fp16, bf16 and fp8 weights are read as they are; a tensor whose values cannot
    be read (meta, or a quantised wrapper without storage) counts by name, shape and dtype only —
    `fingerprint_weights` says which.
    """
    return fingerprint_weights(tensors, samples).value
