"""VRG+ against every schedule a user could pick, judged by the distance to the converged samples.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.vrg_plus [--quick] [--out benchmarks/results]
        [--subjects eps,flow] [--samplers euler dpmpp_2m euler_ancestral] [--steps 5 10]
        [--seeds 3] [--samples 384] [--budgets 500 1000 2000 4000] [--oracle] [--variance-weights 0 1]

For the demo EPS model (SD1.5 schedule) and the demo flow model (shift 3), class-conditional,
cfg 1, per sampler and step count, every candidate the node offers (ComfyUI's registered
schedulers, AYS-SD1 and GITS for EPS, OSS-Flux for flow; k-diffusion's Karras, exponential and
the demo's simple otherwise), VRG alone and VRG+ (`search_schedule`, its own noise seed = the
benchmark seed, never the held-out noise) are sampled with the real sampler from the same
held-out noises (paired). With ComfyUI, `--samplers` takes any sampler the search covers
(`vrg_core.search.samplers.HOST_SAMPLERS`); the search runs ComfyUI's own sampler function and
the schedulers' sigmas are those the stock KSampler hands that sampler. Per schedule, mean ± std
over seeds:

* **distance** — mean squared distance per dimension of the samples to the same model's
  converged samples from the same noise (DPM++2M, 200 steps of the base scheduler);
* **FD** to held-out digits (classifier features) of the same samples;
* **spread** — the samples' variance over the converged samples' (below 1: less varied).

Stochastic samplers (Euler a, the SDE ones) do not follow the teacher: they are judged by FD only. `--oracle` adds, for the
deterministic samplers at 5 steps, a direct minimisation of the held-out distance (Nelder–Mead
in log σ from the best schedule, `ORACLE_FACTOR` × the search budget in model evaluations, seed 0).
`--budgets` adds the budget curve (VRG+ distance per budget); `--variance-weights` searches with
each VRG variance weight (with the held-out error table). Writes vrg_plus.json and vrg_plus.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from vrg_core.errors import VRGError
from vrg_core.optimize import optimize_sigmas
from vrg_core.search import DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT
from vrg_core.search.samplers import HOST_SAMPLERS
from vrg_core.search.teacher import per_noise_distance

from .backend import load_backend
from .common import RESULTS, command_line, log, mean_std, write_results
from .subjects import demo_subject

BASE = {"eps": "karras", "flow": "simple"}
SEARCH_DIGIT = 3  # the one prompt a search is made with (as VRG Demo Conditioning's default); held-out: all digits
NAMES = {"euler": "Euler", "dpmpp_2m": "DPM++2M", "euler_ancestral": "Euler a"}
REFERENCE_STEPS = 200
ORACLE_FACTOR = 50


def candidates(backend, subject, steps: int, sampler: str) -> dict[str, np.ndarray]:
    """Every schedule the search measures as a candidate for `sampler` at `steps`, by name (the node's, with ComfyUI)."""
    return backend.candidates(subject.sampling, steps, sampler)


def base_sigmas(backend, subject, scheduler: str, steps: int, sampler: str) -> np.ndarray:
    """A scheduler's sigmas as the stock KSampler hands them to `sampler`."""
    return backend.ksampler_sigmas(subject.sampling, scheduler, steps, sampler).double().numpy()


def stochastic(sampler: str) -> bool:
    """Judged by FD only: a stochastic sampler does not follow the converged ODE solution."""
    return HOST_SAMPLERS[sampler].stochastic


def search(backend, subject, sampler: str, steps: int, seed: int, evaluations: int, digit: int = SEARCH_DIGIT,
           table=None, variance_weight: float = DEFAULT_VARIANCE_WEIGHT):
    """VRG+ as a user runs it (with ComfyUI: the search node's own code) from `BASE`, prompted with `digit`."""
    return backend.search(subject.name, digit, sampler, BASE[subject.name], steps, seed, evaluations, table,
                          variance_weight)


class HeldOut:
    """Held-out noises per seed, their converged samples, and the real sampler on any schedule."""

    def __init__(self, backend, subject, seeds, samples: int, digit: int | None = None):
        """`digit`: every noise prompted with that digit (default: the subject's labels, all digits)."""
        self.backend, self.subject = backend, subject
        self.batches = [subject.batch(seed, samples) for seed in seeds]
        if digit is not None:
            self.batches = [dataclasses.replace(b, labels=torch.full_like(b.labels, digit)) for b in self.batches]
        self.denoisers = [subject.make_denoise(b) for b in self.batches]
        ref = backend.sigmas(subject.sampling, BASE[subject.name], REFERENCE_STEPS)
        self.reference = [self.samples(i, "dpmpp_2m", ref) for i in range(len(self.batches))]
        self.evaluations = 0

    def samples(self, i: int, sampler: str, sigmas) -> torch.Tensor:
        batch = self.batches[i]
        self.evaluations = getattr(self, "evaluations", 0) + len(batch.noise) * (len(sigmas) - 1)
        with torch.inference_mode():
            return self.backend.sample(sampler, self.denoisers[i], batch.noise, torch.as_tensor(sigmas).float(),
                                       self.subject.sampling, seed=batch.seed).double()

    def distance(self, i: int, sampler: str, sigmas) -> float:
        return float(self.distances(i, sampler, sigmas).mean())

    def distances(self, i: int, sampler: str, sigmas) -> np.ndarray:
        """Per noise of seed `i`: the squared distance per dimension to its converged sample."""
        return per_noise_distance(self.samples(i, sampler, sigmas), self.reference[i])

    def score(self, i: int, sampler: str, sigmas) -> dict:
        out = self.samples(i, sampler, sigmas)
        return {"distance": float((out - self.reference[i]).pow(2).mean()),
                "fd": float(self.subject.metric(out.float())),
                "spread": float(out.var(dim=0).mean() / self.reference[i].var(dim=0).mean())}


def oracle(held: HeldOut, sampler: str, start: np.ndarray, budget: int) -> tuple[np.ndarray, float]:
    """Nelder–Mead in log σ on seed 0's held-out distance itself, σ_0 and the final 0 held, `budget` evaluations."""
    per_call = len(held.batches[0].noise) * (len(start) - 1)
    top = float(start[0])

    def schedule(z):
        return np.r_[top, np.exp(np.sort(z)[::-1]), 0.0]

    def objective(z):
        s = schedule(z)
        if not (np.all(np.diff(s) < 0) and s[1] < top):
            return np.inf
        return held.distance(0, sampler, s)

    result = minimize(objective, np.log(start[1:-1]), method="Nelder-Mead",
                      options={"maxfev": max(budget // per_call, 1), "xatol": 1e-4, "fatol": 1e-10,
                               "initial_simplex": None})
    return schedule(result.x), float(result.fun)


def run_cell(held: HeldOut, subject, table, sampler: str, steps: int, a) -> dict:
    name, backend = subject.name, held.backend
    base = base_sigmas(backend, subject, BASE[name], steps, sampler)
    pool = candidates(backend, subject, steps, sampler)
    schedules = {**pool, "base": base, "vrg": optimize_sigmas(base, table, start="fixed").sigmas}
    cell = {"sampler": sampler, "steps": steps, "searches": [], "rows": {}}
    plus = []
    for i, seed in enumerate(a.seeds):
        r = search(backend, subject, sampler, steps, seed, a.evaluations, a.digit)
        plus.append(r.sigmas)
        held_best, verdict = None, r.verdict.to_record()
        if not stochastic(sampler):  # how often the choice is the best held out; does the stated interval cover?
            measured = {k: held.distance(i, sampler, r.candidates[k]) for k in r.objectives}
            held_best = min(measured, key=measured.get)
            verdict["benchmark_gain"] = 1 - measured[r.verdict.searched] / measured[r.verdict.rival]
        cell["searches"].append({"seed": seed, "chosen": r.chosen, "held_out_best": held_best, "verdict": verdict,
                                 "sigmas": r.sigmas.tolist(), "evaluations": r.evaluations, "samples": r.samples,
                                 "model_seconds": r.model_seconds, "search_seconds": r.search_seconds})
    for label, sigmas in schedules.items():
        cell["rows"][label] = [held.score(i, sampler, sigmas) | {"sigmas": np.asarray(sigmas).tolist()}
                               for i in range(len(a.seeds))]
    cell["rows"]["VRG+"] = [held.score(i, sampler, plus[i]) | {"sigmas": plus[i].tolist()} for i in range(len(a.seeds))]
    for w in a.variance_weights:
        if w == DEFAULT_VARIANCE_WEIGHT:
            continue
        found = [search(backend, subject, sampler, steps, seed, a.evaluations, a.digit, table, w).sigmas
                 for seed in a.seeds]
        cell["rows"][f"VRG+ (variance weight {w:g})"] = [held.score(i, sampler, found[i]) for i in range(len(a.seeds))]
    for budget in a.budgets:
        if budget == a.evaluations:
            continue
        try:
            found = [search(backend, subject, sampler, steps, seed, budget, a.digit).sigmas for seed in a.seeds]
        except VRGError as e:
            log(f"{budget} evaluations: {e}")
            continue
        cell["rows"][f"VRG+ ({budget} evaluations)"] = [held.score(i, sampler, found[i]) for i in range(len(a.seeds))]
    if a.oracle and not stochastic(sampler) and steps <= 5:  # the 5-step target is measured against it
        best = min(cell["rows"], key=lambda k: cell["rows"][k][0]["distance"])
        sigmas, value = oracle(held, sampler, np.asarray(cell["rows"][best][0]["sigmas"]),
                               ORACLE_FACTOR * a.evaluations)
        cell["oracle"] = {"from": best, "distance": value, "sigmas": sigmas.tolist()}
    log(f"{name} {sampler}/{steps}: " + ", ".join(
        f"{k} {np.mean([v['distance'] for v in rows]):.3g}" for k, rows in cell["rows"].items()))
    return cell


def report(results: dict) -> str:
    lines = [f"# VRG+ against every schedule — `{results['command']}`", "",
             f"{results['backend']}, {results['date']}, {results['seconds'] / 60:.0f} min on 2 CPU cores. Seeds "
             f"{results['seeds']}: each seed is one search (its own noise) and {results['samples']} held-out noises. "
             "distance = mean squared distance per dimension to the converged samples (DPM++2M, 200 steps) from "
             "the same noise; spread = variance over the converged samples'. VRG+ searches with the default "
             f"{results['evaluations']} evaluations and no error table"
             + (f", prompted with digit {results['digit']} (held-out noises: all digits)" if "digit" in results else "")
             + (", through the search node's own code" if results["backend"].startswith("ComfyUI") else "") + ".", ""]
    for s in results["subjects"]:
        lines += [f"## {s['title']}", ""]
        for c in s["cells"]:
            judged_by_fd = stochastic(c["sampler"])
            key = "fd" if judged_by_fd else "distance"
            rows = sorted(c["rows"].items(), key=lambda kv: np.mean([v[key] for v in kv[1]]))
            lines += [f"### {NAMES.get(c['sampler'], c['sampler'])}, {c['steps']} steps"
                      + (" (judged by FD)" if judged_by_fd else ""), "",
                      "| schedule | distance | FD | spread |", "|---|---|---|---|"]
            for label, vals in rows:
                bold = "**" if label == "VRG+" else ""
                lines.append(f"| {bold}{label}{bold} | {mean_std([v['distance'] for v in vals])} | "
                             f"{mean_std([v['fd'] for v in vals])} | {mean_std([v['spread'] for v in vals])} |")
            lines.append("")
            lines += targets(c)
    lines.append("")
    return "\n".join(lines) + "\n"


def targets(c: dict) -> list[str]:
    judged_by_fd = stochastic(c["sampler"])
    key = "fd" if judged_by_fd else "distance"
    mean = {k: float(np.mean([v[key] for v in vals])) for k, vals in c["rows"].items()}
    others = {k: v for k, v in mean.items() if not k.startswith("VRG+")}
    best_other = min(others, key=others.get)
    change = 100 * (mean["VRG+"] / others[best_other] - 1)
    out = [f"VRG+ {mean['VRG+']:.4g} vs best other schedule {best_other} {others[best_other]:.4g}: {change:+.1f} %"
           + (" (closest of all)" if change < 0 else " (NOT closest)")]
    if not judged_by_fd:
        picks = [(s["chosen"], s["held_out_best"]) for s in c["searches"]]
        wrong = sum(a != b for a, b in picks)
        out.append(f"check picked the held-out best of its measured schedules in {len(picks) - wrong}/{len(picks)} "
                   f"searches ({'; '.join(f'{a} vs {b}' for a, b in picks if a != b) or 'all agree'})")
    verdicts = [s["verdict"] for s in c["searches"] if "benchmark_gain" in s.get("verdict", {})]
    if verdicts:
        covered = sum(v["low"] <= v["benchmark_gain"] <= v["high"] for v in verdicts)
        kept = sum(v["low"] > 0 for v in verdicts)
        out.append(f"stated figure (best searched vs {', '.join(sorted({v['rival'] for v in verdicts}))}, on "
                   f"{verdicts[0]['noises']} held-back noises): "
                   + "; ".join(f"{100 * v['gain']:+.0f} % [{100 * v['low']:+.0f}, {100 * v['high']:+.0f}] vs "
                               f"{100 * v['benchmark_gain']:+.0f} % here" for v in verdicts)
                   + f" — interval covers the benchmark's gain in {covered}/{len(verdicts)}; searched kept in "
                   f"{kept}/{len(verdicts)}")
    if "oracle" in c:
        o = c["oracle"]
        out.append(f"oracle (seed 0, {ORACLE_FACTOR}x budget, from {o['from']}): {o['distance']:.4g}; VRG+ seed 0 "
                   f"{c['rows']['VRG+'][0]['distance']:.4g} ({100 * (c['rows']['VRG+'][0]['distance'] / o['distance'] - 1):+.1f} % above)")
    seconds = [s["search_seconds"] for s in c["searches"]]
    out.append(f"search cost without model calls: {np.median(seconds):.2f} s (median); evaluations "
               f"{[s['evaluations'] for s in c['searches']]}, teacher samples {c['searches'][0]['samples']}")
    return [f"- {line}" for line in out] + [""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.vrg_plus", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed of 64 noises, Euler, 5 steps")
    ap.add_argument("--out", type=Path, help="default benchmarks/results (quick: a new temporary folder)")
    ap.add_argument("--subjects", default="eps,flow", help="demo models, comma-separated (default eps,flow)")
    ap.add_argument("--samplers", nargs="+", default=["euler", "dpmpp_2m", "euler_ancestral"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--seeds", type=int, default=3, help="searches and held-out noise sets (default 3)")
    ap.add_argument("--samples", type=int, default=384, help="held-out noises per seed (default 384)")
    ap.add_argument("--evaluations", type=int, default=DEFAULT_EVALUATIONS, help="VRG+ budget (default 2000)")
    ap.add_argument("--budgets", nargs="*", type=int, default=[], help="other budgets for the budget curve")
    ap.add_argument("--variance-weights", nargs="*", type=float, default=[], help="other VRG variance weights")
    ap.add_argument("--oracle", action="store_true", help="add the oracle (50x budget on the held-out distance)")
    ap.add_argument("--digit", type=int, default=SEARCH_DIGIT, choices=range(10),
                    help="the prompt the searches are made with (held-out noises: all digits)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.quick:
        a.samplers, a.steps, a.seeds, a.samples = ["euler"], [5], 1, 64
    a.seeds = list(range(a.seeds))
    out = a.out or (Path(tempfile.mkdtemp(prefix="vrg-plus-quick-")) if a.quick else RESULTS)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    backend = load_backend()
    results = {"command": command_line("vrg_plus", backend, argv),
               "backend": backend.version, "date": time.strftime("%Y-%m-%d"), "seeds": a.seeds, "digit": a.digit,
               "samples": a.samples, "evaluations": a.evaluations, "subjects": []}
    for name in a.subjects.split(","):
        subject = demo_subject(name)
        table = subject.table("heldout", 48, 128)
        held = HeldOut(backend, subject, a.seeds, a.samples)
        cells = [run_cell(held, subject, table, sampler, steps, a) for sampler in a.samplers for steps in a.steps]
        results["subjects"].append({"name": name, "title": subject.title, "cells": cells})
    results["seconds"] = time.perf_counter() - t0
    write_results(out, "vrg_plus", results, report(results))


if __name__ == "__main__":
    main()
