"""Table files for the bad-input tests (CLI and server): one valid file and many broken ones.

Written with numpy and safetensors only, so the CLI tests and the real-host tests (another
venv, the pack imported under another name) share them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save

EPS_RANGE = (0.0291675, 14.614642)  # SD1.5's (and the demo EPS model's) sigma range


def table_bytes(kind: str, sigmas, mse=None, count=None, **meta: str) -> bytes:
    """A VRG table file's bytes from raw arrays, with no checks (so broken tables can be written)."""
    sigmas = np.asarray(sigmas, np.float64)
    mse = np.ones_like(sigmas) if mse is None else np.asarray(mse, np.float64)
    count = np.full_like(sigmas, 4.0) if count is None else np.asarray(count, np.float64)
    arrays = {"sigmas": sigmas, "count": count, "sum_mse": mse * count, "sum_mse_sq": mse * mse * count,
              "sum_mean_error": np.zeros_like(sigmas)}
    header = {"format": "vrg-error-table", "version": "1", "kind": kind, "sigma_min": repr(float(sigmas[0])),
              "sigma_max": repr(float(sigmas[-1])), "grid": str(len(sigmas)), "info": "{}", **meta}
    return save(arrays, metadata=header)


def eps_sigmas(lo: float = EPS_RANGE[0], hi: float = EPS_RANGE[1], n: int = 16) -> np.ndarray:
    return np.geomspace(lo, hi, n)


def good_eps_table() -> bytes:
    s = eps_sigmas()
    return table_bytes("eps", s, 1.0 / (1.0 + s**2))


def bad_tables() -> dict[str, tuple[bytes, str]]:
    """{case: (file bytes, a fragment of the fix the error must give)} for `.safetensors` files."""
    good = good_eps_table()
    s = eps_sigmas()
    corrupt = bytearray(good)
    corrupt[12:40] = b"\xff" * 28
    info = json.dumps({"kind": "eps", "levels": 16, "sigmas": s.tolist()}).encode()
    return {
        "zero_count_levels": (table_bytes("eps", s, count=np.r_[4.0, 0.0, np.full(14, 4.0)]), "profile with more samples"),
        "nan_in_table": (table_bytes("eps", s, mse=np.r_[np.nan, np.ones(15)]), "profile the model again"),
        "one_level": (table_bytes("eps", s[:1]), "profile with a grid of at least 2 levels"),
        "unknown_kind": (table_bytes("sdxl", s), "use one of"),
        "newer_version": (table_bytes("eps", s, version="99"), "update the node pack"),
        "corrupt": (bytes(corrupt), "load a .safetensors VRG table"),
        "truncated": (good[: len(good) // 2], "save the table again"),
        "empty_file": (b"", "save the table again"),
        "foreign_safetensors": (save({"weight": np.zeros(4, np.float32)}, metadata={"format": "pt"}),
                                "load a table saved by VRG"),
        "foreign_no_metadata": (save({"weight": np.zeros(4, np.float32)}), "load a table saved by VRG"),
        "json_instead": (info, "load the .safetensors table VRG saved"),
    }


def write_oversized(path: Path, size: int = 17 * 1024 * 1024) -> Path:
    """A sparse file over the 16 MiB table limit (cheap to make; must be refused before reading)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path
