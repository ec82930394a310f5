"""The SDE samplers judged against their own pathwise limit: the same SDE solved finely on the same Brownian path.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.sde_path [--quick] [--out benchmarks/results]
        [--subjects eps,flow] [--samplers dpmpp_2m_sde dpmpp_3m_sde] [--steps 5 10] [--seeds 3]
        [--noises 32] [--reference 800] [--evaluations 2000] [--fd-samples 384] [--oracle 0]

VRG+ for the SDE samplers judged by what it aims at. Per demo model, SDE sampler and seed: `noises`
class-conditional noises (the seed's, as in `vrg_plus`) and one Brownian path (ComfyUI's own
`BrownianTreeNoiseSampler`, seed 10 000 + seed, over one σ interval that holds every schedule, so
every schedule sees the same path). The reference is the same ComfyUI sampler on `reference` steps
of the base scheduler (karras for EPS, simple for flow). Reported, mean ± std over seeds:

* **teacher cost**: the same SDE on reference/2 … reference/16 steps, distance to the reference — how
  fine a teacher must be;
* **every candidate** the search node measures for the sampler at each step count, and **VRG+** (the
  node's own search, its noise and paths its own, seed = the seed): the mean squared distance per
  dimension of the final samples to the reference on the same path, and the **FD** to held-out digits
  of `fd-samples` samples (the seed's first noises and more) drawn by ComfyUI's KSampler itself with
  its own noise (its Brownian tree over the schedule's own range, seeded with the seed);
* the **selection floor**: what choosing among the fixed schedules by their mean distance on as many
  noises as the search has costs (`selection_floor`), beside VRG+'s ratio to the best other schedule;
* with `--oracle N`, the **ceiling**: a schedule fitted by Nelder–Mead (N runs) on the distance itself,
  on noises and a path of its own, judged on the seeds' like the rest.

Starting states are the KSampler's (`noise_scaling`, with its max-denoise rule); ComfyUI only.
Writes sde_path.json and sde_path.md.
"""

from __future__ import annotations

import argparse
import importlib
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from scipy.optimize import minimize

from vrg_core.search import DEFAULT_EVALUATIONS
from vrg_core.search.teacher import per_noise_distance

from .backend import ComfyBackend, load_backend
from .common import RESULTS, command_line, log, mean_std, write_results
from .subjects import demo_subject
from .vrg_plus import BASE, candidates, search

TEACHER_SHARES = (2, 4, 8, 16)  # the teacher-cost rows: reference / share steps
FLOOR_DRAWS = 2000  # random noise subsets a seed for the selection floor
ORACLE = "oracle (fitted on other noises)"
ORACLE_SEED = 100  # the oracle's own noises and path, none of the judged seeds'
JUDGED_ONLY = ("VRG+", ORACLE)  # rows that are not schedules a user could pick


class SeedPath:
    """One seed's noises, model and Brownian path: `final(sampler, sigmas)` is the sampler's result on `sigmas`."""

    def __init__(self, backend: ComfyBackend, subject, seed: int, noises: int, top: float, low: float):
        self.kdiff = importlib.import_module("comfy.k_diffusion.sampling")
        batch = subject.batch(seed, noises)
        denoise = subject.make_denoise(batch)
        self.ms = backend.model_sampling(subject.sampling)
        self.noise, self.seed, self.top, self.low = batch.noise.float(), 10_000 + seed, top, low

        class Model:  # KSAMPLER's model: a call, and what the sampler functions read through `inner_model`
            inner_model = SimpleNamespace(model_sampling=self.ms,
                                          model_patcher=backend.guider(subject.sampling).model_patcher)

            def __call__(self, x, sigma, **_):
                return denoise(x, sigma)

        self.model = Model()

    def start(self, sigma0: float) -> torch.Tensor:
        """The KSampler's first state at `sigma0` from the noise on an empty latent (max-denoise as it decides it)."""
        sigma_max = float(self.ms.sigma_max)
        max_denoise = math.isclose(sigma_max, sigma0, rel_tol=1e-05) or sigma0 > sigma_max
        return self.ms.noise_scaling(torch.tensor(sigma0), self.noise, torch.zeros_like(self.noise), max_denoise)

    def final(self, sampler: str, sigmas) -> torch.Tensor:
        sigmas = torch.as_tensor(np.asarray(sigmas), dtype=torch.float32)
        x = self.start(float(sigmas[0]))
        path = self.kdiff.BrownianTreeNoiseSampler(x, torch.tensor(self.low), torch.tensor(self.top), seed=self.seed,
                                                   cpu=True)
        with torch.no_grad():
            return getattr(self.kdiff, f"sample_{sampler}")(self.model, x, sigmas.clone(), extra_args={},
                                                            disable=True, noise_sampler=path).double()


def distance(samples: torch.Tensor, reference: torch.Tensor) -> float:
    return float((samples - reference).pow(2).mean())


def selection_floor(per_noise: dict[str, list[np.ndarray]], noises: int) -> float:
    """What picking among the fixed schedules on `noises` noises costs: over `FLOOR_DRAWS` random sets of that many
    of one seed's noises (every seed), the mean ratio of the mean distance (every noise of every seed) of the
    schedule least on the set to the least mean distance. `per_noise`: {schedule: per seed, its distances}."""
    names = [k for k in per_noise if k not in JUDGED_ONLY]
    values = np.array([per_noise[k] for k in names])  # [schedules, seeds, noises]
    overall = values.mean(axis=(1, 2))
    rng, ratios = np.random.default_rng(0), []
    for seed in range(values.shape[1]):
        for _ in range(FLOOR_DRAWS):
            chosen = rng.choice(values.shape[2], min(noises, values.shape[2]), replace=False)
            ratios.append(overall[np.argmin(values[:, seed, chosen].mean(axis=1))] / overall.min())
    return float(np.mean(ratios))


def oracle(path: SeedPath, sampler: str, reference: torch.Tensor, start: np.ndarray, evaluations: int) -> np.ndarray:
    """The ceiling: Nelder–Mead in log σ (σ_0 and the final 0 held) on the mean distance to `reference` on `path`
    itself, from schedule `start`, `evaluations` runs of the sampler."""
    top, low = float(start[0]), 0.5 * float(start[-2])

    def schedule(z: np.ndarray) -> np.ndarray:
        return np.r_[top, np.exp(np.sort(np.clip(z, np.log(low), np.log(top)))[::-1]), 0.0]

    def objective(z: np.ndarray) -> float:
        s = schedule(z)
        return distance(path.final(sampler, s), reference) if np.all(np.diff(s) < 0) else np.inf

    result = minimize(objective, np.log(start[1:-1]), method="Nelder-Mead",
                      options={"maxfev": evaluations, "xatol": 1e-3, "fatol": 1e-9})
    return schedule(result.x)


def fitted_oracles(backend, subject, sampler: str, a, schedules: dict, reference_sigmas, top: float,
                   low: float) -> dict[int, np.ndarray]:
    """Per step count, `oracle` on `ORACLE_SEED`'s noises and path from the best fixed schedule there."""
    path = SeedPath(backend, subject, ORACLE_SEED, a.noises, top, low)
    reference, out = path.final(sampler, reference_sigmas), {}
    for steps, fixed in schedules.items():
        start = min(fixed.values(), key=lambda s: distance(path.final(sampler, s), reference))
        out[steps] = oracle(path, sampler, reference, start, a.oracle)
        log(f"{subject.name} {sampler} {steps} steps: oracle fitted")
    return out


def run_cell(backend, subject, sampler: str, a) -> dict:
    """One model and sampler over the seeds: teacher cost, and every schedule at each step count."""
    reference_sigmas = backend.sigmas(subject.sampling, BASE[subject.name], a.reference).double().numpy()
    schedules = {steps: candidates(backend, subject, steps, sampler) for steps in a.steps}
    teacher_rows = {share: backend.sigmas(subject.sampling, BASE[subject.name], a.reference // share).double().numpy()
                    for share in TEACHER_SHARES}
    every = [reference_sigmas, *teacher_rows.values(), *(s for c in schedules.values() for s in c.values())]
    top = 1.001 * max(float(s[0]) for s in every)
    low = 0.5 * min(float(s[s > 0].min()) for s in every)
    teacher, cells = {share: [] for share in TEACHER_SHARES}, {steps: {} for steps in a.steps}
    fd, searches = {steps: {} for steps in a.steps}, {steps: [] for steps in a.steps}
    per_noise: dict = {steps: {} for steps in a.steps}
    oracles = fitted_oracles(backend, subject, sampler, a, schedules, reference_sigmas, top, low) if a.oracle else {}
    for seed in a.seeds:
        path = SeedPath(backend, subject, seed, a.noises, top, low)
        reference = path.final(sampler, reference_sigmas)
        for share, sigmas in teacher_rows.items():
            teacher[share].append(distance(path.final(sampler, sigmas), reference))
        fd_batch = subject.batch(seed, a.fd_samples)
        fd_denoise = subject.make_denoise(fd_batch)
        for steps in a.steps:
            found = search(backend, subject, sampler, steps, seed, a.evaluations)
            searches[steps].append({"seed": seed, "chosen": found.chosen, "verdict": found.verdict.to_record(),
                                    "sigmas": found.sigmas.tolist(), "evaluations": found.evaluations,
                                    "noises": found.samples + found.verdict.noises})
            judged = {"VRG+": found.sigmas, **({ORACLE: oracles[steps]} if oracles else {})}
            for name, sigmas in {**schedules[steps], **judged}.items():
                each = per_noise_distance(path.final(sampler, sigmas), reference)
                per_noise[steps].setdefault(name, []).append(each)
                cells[steps].setdefault(name, []).append(float(each.mean()))
                if a.fd_samples:
                    with torch.inference_mode():
                        out = backend.sample(sampler, fd_denoise, fd_batch.noise, torch.as_tensor(sigmas).float(),
                                             subject.sampling, seed=seed)
                    fd[steps].setdefault(name, []).append(float(subject.metric(out.float())))
        log(f"{subject.name} {sampler} seed {seed}: done")
    floor = {str(steps): selection_floor(per_noise[steps], round(np.mean([s["noises"] for s in searches[steps]])))
             for steps in a.steps}
    return {"sampler": sampler, "teacher": {str(a.reference // s): v for s, v in teacher.items()},
            "cells": {str(steps): c for steps, c in cells.items()}, "fd": {str(steps): c for steps, c in fd.items()},
            "searches": {str(steps): c for steps, c in searches.items()}, "floor": floor}


def report(results: dict) -> str:
    lines = [f"# SDE samplers against their own pathwise limit ({results['backend']}, {results['date']})", "",
             f"`{results['command']}`", "",
             f"{results['noises']} noises a seed, seeds {results['seeds']}; reference: the same sampler on "
             f"{results['reference']} steps, on the same Brownian path. Distance: mean squared distance per dimension "
             f"to it; FD: to held-out digits, {results['fd_samples']} samples a seed by the KSampler with its own noise; "
             "mean ± std over seeds. VRG+: the node's search (its choice per seed below the table).", ""]
    for subject in results["subjects"]:
        for cell in subject["cells"]:
            lines += [f"## {subject['title']}: {cell['sampler']}", "",
                      "Teacher cost (the same SDE on fewer steps): " +
                      ", ".join(f"{n} steps {mean_std(v)}" for n, v in cell["teacher"].items()), "",
                      "| schedule | " + " | ".join(f"{n} steps: distance | FD" for n in cell["cells"]) + " |",
                      "|---|" + "---|---|" * len(cell["cells"])]
            names = sorted({k for c in cell["cells"].values() for k in c}, key=lambda k: (k not in JUDGED_ONLY, k))
            for name in names:
                lines.append(f"| {name} | " + " | ".join(
                    f"{mean_std(c[name]) if name in c else '–'} | {mean_std(cell['fd'][n][name]) if cell['fd'][n] else '–'}"
                    for n, c in cell["cells"].items()) + " |")
            lines += ["", "VRG+ kept, per seed: " + "; ".join(
                f"{n} steps: " + ", ".join(s["chosen"] for s in found) for n, found in cell["searches"].items()),
                "", ratios(cell), ""]
    return "\n".join(lines)


def ratios(cell: dict) -> str:
    """VRG+'s mean distance over the best other schedule's, per step count."""
    out = []
    for n, c in cell["cells"].items():
        others = {k: np.mean(v) for k, v in c.items() if k not in JUDGED_ONLY}
        best = min(others, key=others.get)
        noises = round(np.mean([s["noises"] for s in cell["searches"][n]]))
        ceiling = f", the oracle {np.mean(c[ORACLE]) / others[best]:.2f}×" if ORACLE in c else ""
        out.append(f"{n} steps: {np.mean(c['VRG+']) / others[best]:.2f}× {best} (choosing among the fixed schedules "
                   f"on {noises} noises, as many as the search has: {cell['floor'][n]:.2f}×{ceiling})")
    return "VRG+ / the best other schedule by distance: " + ", ".join(out) + "; by FD: " + ", ".join(
        fd_against_best(f) for f in cell["fd"].values() if f)


def fd_against_best(fd: dict) -> str:
    """VRG+'s FD beside the best other schedule's (least mean FD), each mean ± std over seeds."""
    best = min((k for k in fd if k not in JUDGED_ONLY), key=lambda k: np.mean(fd[k]))
    return f"{mean_std(fd['VRG+'])} against {best} {mean_std(fd[best])}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sde_path", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed of 8 noises, dpmpp_2m_sde, 5 steps")
    ap.add_argument("--out", type=Path, help="default benchmarks/results (quick: a new temporary folder)")
    ap.add_argument("--subjects", default="eps,flow", help="demo models, comma-separated (default eps,flow)")
    ap.add_argument("--samplers", nargs="+", default=["dpmpp_2m_sde", "dpmpp_3m_sde"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noises", type=int, default=32, help="noises a seed (default 32)")
    ap.add_argument("--reference", type=int, default=800, help="the reference's steps (default 800)")
    ap.add_argument("--evaluations", type=int, default=DEFAULT_EVALUATIONS, help="VRG+ budget (default 2000)")
    ap.add_argument("--fd-samples", type=int, default=384, help="FD samples a seed (default 384; 0: no FD)")
    ap.add_argument("--oracle", type=int, default=0, help="the ceiling: Nelder–Mead runs on the distance itself, fitted "
                    "on noises and a path of their own (default 0: none)")
    a = ap.parse_args(argv)
    if a.quick:
        a.samplers, a.steps, a.seeds, a.noises, a.reference, a.evaluations = ["dpmpp_2m_sde"], [5], 1, 8, 160, 1000
        a.fd_samples = 0
    a.seeds = list(range(a.seeds))
    backend = load_backend("comfyui")
    out = a.out or (Path(tempfile.mkdtemp(prefix="vrg-sde-quick-")) if a.quick else RESULTS)
    t0 = time.perf_counter()
    results = {"command": command_line("sde_path", backend, argv), "backend": backend.version,
               "date": time.strftime("%Y-%m-%d"), "seeds": a.seeds, "noises": a.noises, "reference": a.reference,
               "evaluations": a.evaluations, "fd_samples": a.fd_samples, "subjects": []}
    for name in a.subjects.split(","):
        subject = demo_subject(name)
        results["subjects"].append({"name": name, "title": subject.title,
                                    "cells": [run_cell(backend, subject, sampler, a) for sampler in a.samplers]})
    results["seconds"] = time.perf_counter() - t0
    write_results(out, "sde_path", results, report(results))


if __name__ == "__main__":
    main()
