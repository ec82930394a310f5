"""Reading and writing the demo weight files (safetensors with JSON metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..errors import VRGError
from ..table_io import write_atomic

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The metadata key holding the file's JSON description (config, schedule, training facts).
INFO_KEY = "vrg_demo"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Write `tensors` and `info` (JSON-able) to `path` atomically (temp file + rename)."""
    data = save({k: v.detach().contiguous() for k, v in tensors.items()}, metadata={INFO_KEY: json.dumps(info, sort_keys=True)})
    write_atomic(Path(path), data)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) of a file written by `save_tensors`."""
    path = Path(path)
    if not path.is_file():
        raise VRGError(f"demo weights {path} are missing; train them with `python -m vrg_core.demo.train`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise VRGError(f"demo weights {path} are unreadable ({exc}); retrain them") from None
    if INFO_KEY not in metadata:
        raise VRGError(f"{path} is not a demo weight file (no {INFO_KEY!r} metadata)")
    return tensors, json.loads(metadata[INFO_KEY])
