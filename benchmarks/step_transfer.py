"""Does a VRG+ schedule searched at a few step counts serve the step counts between them?

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.step_transfer [--subjects eps,flow] [--sampler euler]
        [--anchors 4 8 16 30] [--between 6 12 20] [--seeds 1] [--samples 128]

The first measurement for "one search serves every step count": per demo model and seed, VRG+ is
searched (the node's own search, default budget, prompt digit 3) at each anchor and at each step
count between them. At a step count between two anchors the *interpolated* schedule is each
anchor's schedule resampled to that count (log σ, linear in the step's position, as AYS's
`loglinear_interp`), the two blended with a weight linear in log steps. On held-out noises (all
digits, paired; distance to the converged samples, DPM++2M 200 steps) it is compared with the
search made for that step count alone and with the best other schedule there (the best of every
schedule the node measures, chosen on these held-out noises: a bar the search itself cannot
see). Writes step_transfer.json and step_transfer.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vrg_core.search import DEFAULT_EVALUATIONS

from .backend import load_backend
from .common import RESULTS, command_line, log
from .subjects import demo_subject
from .vrg_plus import HeldOut, candidates, search


def resampled(sigmas: np.ndarray, steps: int) -> np.ndarray:
    """`sigmas` (descending, ending at 0) as a `steps`-step schedule: log σ of its positive part interpolated
    linearly in the step's position from 0 (σ_0) to 1 (the last positive σ), then the final 0."""
    positive = np.log(np.asarray(sigmas, dtype=np.float64)[:-1])
    at = np.linspace(0.0, 1.0, steps)
    return np.append(np.exp(np.interp(at, np.linspace(0.0, 1.0, len(positive)), positive)), 0.0)


def interpolated(anchors: dict[int, np.ndarray], steps: int) -> np.ndarray:
    """The schedule for `steps` from the searched `anchors` {steps: σ}: the two neighbouring anchors resampled to
    `steps`, blended in log σ with a weight linear in log steps (one anchor beyond the range's ends)."""
    counts = sorted(anchors)
    below = max([n for n in counts if n <= steps], default=counts[0])
    above = min([n for n in counts if n >= steps], default=counts[-1])
    a, b = resampled(anchors[below], steps), resampled(anchors[above], steps)
    if below == above:
        return a
    w = (np.log(steps) - np.log(below)) / (np.log(above) - np.log(below))
    return np.append(np.exp((1 - w) * np.log(a[:-1]) + w * np.log(b[:-1])), 0.0)


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """mean(a) / mean(b) with a paired 90 % interval of the ratio (normal approximation of the difference)."""
    d = a - b
    half = 1.645 * d.std(ddof=1) / np.sqrt(len(d))
    return f"{a.mean() / b.mean():.3f}× ({(a.mean() - half) / b.mean():.3f}–{(a.mean() + half) / b.mean():.3f})"


def run_subject(backend, name: str, a) -> dict:
    subject = demo_subject(name)
    held = HeldOut(backend, subject, a.seeds, a.samples)
    rows = []
    for i, seed in enumerate(a.seeds):
        found = {}
        for steps in sorted({*a.anchors, *a.between}):
            r = search(backend, subject, a.sampler, steps, seed, a.evaluations)
            found[steps] = (r.sigmas, r.evaluations, r.chosen)
            log(f"{name} seed {seed}: searched {steps} steps ({r.chosen}, {r.evaluations} evaluations)")
        anchors = {n: found[n][0] for n in a.anchors}
        for steps in a.between:
            others = {k: held.distances(i, a.sampler, v) for k, v in candidates(backend, subject, steps,
                                                                                  a.sampler).items()}
            best = min(others, key=lambda k: others[k].mean())
            dedicated = held.distances(i, a.sampler, found[steps][0])
            family = held.distances(i, a.sampler, interpolated(anchors, steps))
            rows.append({"seed": seed, "steps": steps, "best_other": best, "dedicated_chosen": found[steps][2],
                         "family": float(family.mean()), "dedicated": float(dedicated.mean()),
                         "best_other_distance": float(others[best].mean()),
                         "family_vs_dedicated": paired(family, dedicated), "family_vs_best": paired(family, others[best]),
                         "dedicated_vs_best": paired(dedicated, others[best]),
                         "anchor_evaluations": int(sum(found[n][1] for n in a.anchors)),
                         "dedicated_evaluations": int(found[steps][1])})
            log(f"{name} {steps} steps: family {rows[-1]['family_vs_dedicated']} of dedicated, "
                f"{rows[-1]['family_vs_best']} of {best}")
    return {"name": name, "title": subject.title, "rows": rows}


def report(results: dict) -> str:
    lines = [f"# Step transfer: anchors {results['anchors']} → the step counts between (`{results['command']}`)", "",
             f"{results['backend']}, {results['date']}, {results['sampler']}, seeds {results['seeds']}, "
             f"{results['samples']} held-out noises per seed; ratios of mean distance with paired 90 % intervals.", "",
             "| model | steps | seed | interpolated / dedicated search | interpolated / best other | "
             "dedicated / best other | best other | anchors' evaluations | one search's |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in results["subjects"]:
        for r in s["rows"]:
            lines.append(f"| {s['name']} | {r['steps']} | {r['seed']} | {r['family_vs_dedicated']} | "
                         f"{r['family_vs_best']} | {r['dedicated_vs_best']} | {r['best_other']} | "
                         f"{r['anchor_evaluations']} | {r['dedicated_evaluations']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.step_transfer", description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", default="eps,flow")
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--anchors", nargs="+", type=int, default=[4, 8, 16, 30])
    ap.add_argument("--between", nargs="+", type=int, default=[6, 12, 20])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--samples", type=int, default=128, help="held-out noises per seed (default 128)")
    ap.add_argument("--evaluations", type=int, default=DEFAULT_EVALUATIONS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    a.seeds = list(range(a.seeds))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    backend = load_backend()
    results = {"command": command_line("step_transfer", backend, argv), "backend": backend.version,
               "date": time.strftime("%Y-%m-%d"), "sampler": a.sampler, "seeds": a.seeds, "samples": a.samples,
               "anchors": a.anchors, "between": a.between,
               "subjects": [run_subject(backend, name, a) for name in a.subjects.split(",")]}
    results["seconds"] = time.perf_counter() - t0
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "step_transfer.json").write_text(json.dumps(results, indent=1))
    (a.out / "step_transfer.md").write_text(report(results))
    log(f"wrote {a.out / 'step_transfer.md'} in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
