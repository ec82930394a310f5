"""What every benchmark shares: where results go, the log line, the run record's command and mean ± std."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def command_line(module: str, backend, argv: list[str] | None) -> str:
    """How a benchmark run was started, for its results (the ComfyUI path as a placeholder)."""
    return (("COMFYUI_PATH=<ComfyUI> " if backend.name == "comfyui" else "")
            + " ".join([f"python -m benchmarks.{module}", *(sys.argv[1:] if argv is None else argv)]))


def mean_std(values) -> str:
    """"mean ± std" of `values` (population std), or the mean alone for one value."""
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.4g} ± {v.std():.2g}" if len(v) > 1 else f"{v.mean():.4g}"


def write_results(out: Path, name: str, results: dict, markdown: str) -> None:
    """`out`/`name`.json (the run record) and `name`.md (its report), then the log line with the run's minutes."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1))
    (out / f"{name}.md").write_text(markdown)
    log(f"wrote {out / f'{name}.md'} in {results['seconds'] / 60:.1f} min")
