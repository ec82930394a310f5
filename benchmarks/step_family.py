"""One VRG+ search for every step count: the family against a search per step count and the best other schedule.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.step_family [--subjects eps,flow] [--samplers euler dpmpp_2m]
        [--steps 4 6 8 12 16 20 30] [--range 4-30] [--seeds 3] [--samples 96] [--family-evaluations N]
        [--replicate] [--out DIR]

Per demo model, sampler and seed (the searches' own noise seed; held-out noises: all digits,
paired, never seen by a search), the node's own search for a step range (`family_search`, its
default budget: `DEFAULT_FAMILY_EVALUATIONS`) is made once; at each step count its schedule is
compared with the node's search made for that count alone (default budget) and with the best
other schedule there — the best, on these held-out noises, of every schedule the node measures
(a bar no search can see: it is picked on the very noises it is judged on). Distance: mean
squared distance per dimension to the converged samples (DPM++2M, 200 steps). Ratios are of
the mean over held-out noises, per seed; the tables give their mean ± std over seeds, and the
cost in model evaluations. `--replicate` adds the same search for each count from another noise
seed, judged on the same noises: two searches for one count differ that much by their noise alone.
Writes step_family.json and step_family.md in `--out`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vrg_core.search import DEFAULT_EVALUATIONS
from vrg_core.search.family import DEFAULT_FAMILY_EVALUATIONS, DEFAULT_RANGE

from .backend import load_backend
from .common import RESULTS, command_line, log, mean_std, write_results
from .subjects import demo_subject
from .vrg_plus import BASE, SEARCH_DIGIT, HeldOut, candidates, search

REPLICATE_SEED = 100  # `--replicate`: the same search for the count with noise seed + 100, judged on the same noises


def run_cell(held: HeldOut, subject, sampler: str, a) -> dict:
    """Per seed and step count: the family's, the dedicated search's and the best other's held-out distances."""
    rows = {steps: [] for steps in a.steps}
    costs = {"family": [], "dedicated": {steps: [] for steps in a.steps}}
    for i, seed in enumerate(a.seeds):
        family = held.backend.family(subject.name, SEARCH_DIGIT, sampler, BASE[subject.name], a.range, seed,
                                     a.family_evaluations)
        costs["family"].append(family.evaluations)
        for steps in a.steps:
            dedicated = search(held.backend, subject, sampler, steps, seed, a.evaluations)
            costs["dedicated"][steps].append(dedicated.evaluations)
            replicate = (search(held.backend, subject, sampler, steps, seed + REPLICATE_SEED, a.evaluations)
                         if a.replicate else None)
            others = {k: held.distance(i, sampler, v) for k, v in candidates(held.backend, subject, steps,
                                                                              sampler).items()}
            best = min(others, key=others.get)
            rows[steps].append({"seed": seed, "family": held.distance(i, sampler, family.sigmas(steps)),
                                "dedicated": held.distance(i, sampler, dedicated.sigmas), "best_other": others[best],
                                "best_other_name": best, "family_source": family.source(steps),
                                "dedicated_kept": dedicated.chosen} | ({} if replicate is None else {
                                    "replicate": held.distance(i, sampler, replicate.sigmas),
                                    "replicate_kept": replicate.chosen}))
        log(f"{subject.name} {sampler} seed {seed}: " + ", ".join(
            f"{n}: {r[-1]['family'] / r[-1]['best_other']:.3f}x best other" for n, r in rows.items()))
    return {"sampler": sampler, "rows": rows, "costs": costs}


def report(results: dict) -> str:
    lines = [f"# One search for every step count (`{results['command']}`)", "",
             f"{results['backend']}, {results['date']}; the family: step range {results['range']}, "
             f"{results['family_evaluations']} evaluations; a search per count: {results['evaluations']}; seeds "
             f"{results['seeds']}, {results['samples']} held-out noises each (all digits; searches prompted with "
             f"digit {SEARCH_DIGIT}). Ratios of mean distance to the converged samples, mean ± std over seeds; "
             "best other: the best on these held-out noises of every schedule the node measures.", "",
             "| model | sampler | steps | family / best other | family / search for this count | " + (
                 f"the same search, noise seed + {REPLICATE_SEED} / search for this count | " if results.get("replicate")
                 else "") + "search for this count / best other | best other (per seed) | "
             "evaluations: family (all counts) | a search for this count |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if results.get("replicate") else "")]
    for s in results["subjects"]:
        for cell in s["cells"]:
            for steps, rows in cell["rows"].items():
                ratio = {k: [r[k] / r[d] for r in rows] for k, d in
                         (("family", "best_other"), ("dedicated", "best_other"))}
                versus = [r["family"] / r["dedicated"] for r in rows]
                again = f"{mean_std([r['replicate'] / r['dedicated'] for r in rows])} | " if "replicate" in rows[0] else ""
                lines.append(f"| {s['name']} | {cell['sampler']} | {steps} | {mean_std(ratio['family'])} | "
                             f"{mean_std(versus)} | {again}{mean_std(ratio['dedicated'])} | "
                             f"{', '.join(r['best_other_name'] for r in rows)} | "
                             f"{np.mean(cell['costs']['family']):.0f} | "
                             f"{np.mean(cell['costs']['dedicated'][steps]):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.step_family", description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", default="eps,flow")
    ap.add_argument("--samplers", nargs="+", default=["euler", "dpmpp_2m"])
    ap.add_argument("--steps", nargs="+", type=int, default=[4, 6, 8, 12, 16, 20, 30])
    ap.add_argument("--range", default=DEFAULT_RANGE, help=f"the family's step range (default {DEFAULT_RANGE})")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=96, help="held-out noises per seed (default 96)")
    ap.add_argument("--family-evaluations", type=int, default=DEFAULT_FAMILY_EVALUATIONS)
    ap.add_argument("--evaluations", type=int, default=DEFAULT_EVALUATIONS, help="a search per step count's budget")
    ap.add_argument("--replicate", action="store_true", help="also the same search per count with another noise "
                    "seed: how far two searches for one count differ (the floor of 'family / search for this count')")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    a.seeds = list(range(a.seeds))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    backend = load_backend("comfyui")
    results = {"command": command_line("step_family", backend, argv), "backend": backend.version,
               "date": time.strftime("%Y-%m-%d"), "range": a.range, "family_evaluations": a.family_evaluations,
               "evaluations": a.evaluations, "replicate": a.replicate, "seeds": a.seeds, "samples": a.samples, "subjects": []}
    for name in a.subjects.split(","):
        subject = demo_subject(name)
        held = HeldOut(backend, subject, a.seeds, a.samples)
        results["subjects"].append({"name": name, "cells": [run_cell(held, subject, s, a) for s in a.samplers]})
    results["seconds"] = time.perf_counter() - t0
    write_results(a.out, "step_family", results, report(results))


if __name__ == "__main__":
    main()
