"""How far can choosing a schedule on few noises be trusted? The ceiling and the noise of VRG+'s selection.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.selection [--results benchmarks/results/vrg_plus.json]
        [--seeds 3 4 5 6 7] [--samples 384] [--out benchmarks/results]

For every cell of a `benchmarks.vrg_plus --oracle` run that has an oracle (a schedule fitted on
seed 0's held-out noises with 50× the search budget), on fresh noises none of those schedules
was fitted or chosen on (seeds 3–7 by default, 384 each; DPM++2M 200 steps as the converged
reference):

* **out of sample** — the distance of the oracle, of the three best other schedules and of each
  seed's VRG+ (mean ± std over the fresh seeds): the oracle's in-sample distance is no ceiling,
  this is;
* **selection noise** — per noise, the squared distance of the best other schedule minus that
  of the second best; how often n noises drawn from the fresh ones rank the two the other way
  round (4 000 draws; n = the search's teacher samples at the default budget, and more).

Writes selection.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .backend import load_backend
from .common import RESULTS, log
from .subjects import demo_subject
from .vrg_plus import HeldOut

DRAWS = 4000
COUNTS = (23, 46, 128, 384, 1000)


def per_noise(held: HeldOut, sampler: str, sigmas) -> np.ndarray:
    """Squared distance per noise (mean over dimensions) to the converged samples, over all of `held`'s seeds."""
    return torch.cat([(held.samples(i, sampler, np.asarray(sigmas)) - held.reference[i]).pow(2).flatten(1).mean(1)
                      for i in range(len(held.batches))]).numpy()


def misranked(difference: np.ndarray, count: int, seed: int = 0) -> float:
    """Share of `DRAWS` sets of `count` noises (drawn with replacement) whose mean difference has the other sign."""
    picks = np.random.default_rng(seed).integers(0, len(difference), size=(DRAWS, count))
    return float(np.mean((difference[picks].mean(axis=1) > 0) != (difference.mean() > 0)))


def cell_report(held: HeldOut, cell: dict, fitted_on: int) -> list[str]:
    sampler = cell["sampler"]
    fitted = {k: v for k, v in cell["rows"].items() if "(" not in k}  # the rows at the default budget
    means = {k: np.mean([r["distance"] for r in v]) for k, v in fitted.items()}
    others = sorted((k for k in means if k != "VRG+"), key=means.get)[:3]
    schedules = {"oracle": cell["oracle"]["sigmas"], **{k: fitted[k][0]["sigmas"] for k in others},
                 **{f"VRG+ (search seed {r['seed']})": r["sigmas"] for r in cell["searches"]}}
    errors = {k: per_noise(held, sampler, v) for k, v in schedules.items()}
    per_seed = {k: e.reshape(len(held.batches), -1).mean(axis=1) for k, e in errors.items()}
    lines = [f"### {cell['sampler']}, {cell['steps']} steps", "",
             f"oracle in sample (on the {fitted_on} noises of seed 0 it was fitted on): {cell['oracle']['distance']:.6f}",
             "", "| schedule | distance on fresh noises |", "|---|---|"]
    lines += [f"| {k} | {v.mean():.6f} ± {v.std():.2g} |" for k, v in sorted(per_seed.items(), key=lambda kv: kv[1].mean())]
    first, second = others[:2]
    difference = errors[first] - errors[second]
    lines += ["", f"Selection noise, {first} − {second} per noise: mean {difference.mean():.3g}, "
              f"std {difference.std():.3g}; the top 5 % of noises carry "
              f"{np.sort(errors[first])[::-1][:len(difference) // 20].sum() / errors[first].sum():.0%} of "
              f"{first}'s distance.", "", "| noises | ranked the other way round |", "|---|---|"]
    lines += [f"| {n} | {misranked(difference, n):.0%} |" for n in COUNTS]
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.selection", description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS / "vrg_plus.json", help="a vrg_plus --oracle run")
    ap.add_argument("--seeds", nargs="+", type=int, default=[3, 4, 5, 6, 7], help="fresh noise sets (default 3..7)")
    ap.add_argument("--samples", type=int, default=384, help="noises per fresh seed (default 384)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = json.loads(a.results.read_text())
    if set(a.seeds) & set(results["seeds"]):
        raise SystemExit(f"--seeds {a.seeds} overlap the searches' and held-out seeds {results['seeds']}")
    backend = load_backend()
    lines = ["# Choosing a schedule on few noises — `COMFYUI_PATH=<ComfyUI> python -m benchmarks.selection`", "",
             f"{backend.version}; cells of `{results['command']}` ({results['date']}) with an oracle; fresh "
             f"noises: seeds {a.seeds} × {a.samples}; distance to the converged samples (DPM++2M, 200 steps).", ""]
    for subject_result in results["subjects"]:
        cells = [c for c in subject_result["cells"] if "oracle" in c]
        if not cells:
            continue
        held = HeldOut(backend, demo_subject(subject_result["name"]), a.seeds, a.samples)
        lines += [f"## {subject_result['title']}", ""]
        for cell in cells:
            lines += cell_report(held, cell, results["samples"])
            log(f"{subject_result['name']} {cell['sampler']}/{cell['steps']} done")
    lines.append(f"{(time.perf_counter() - t0) / 60:.0f} min on 2 CPU cores.")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
