"""VRG+'s linearised Nelder–Mead refinement against an LD3-style gradient refinement, on the same held-out noises.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.ld3 [--quick] [--out benchmarks/results]
        [--subjects eps,flow] [--samplers euler dpmpp_2m] [--steps 5 10] [--seeds 3] [--samples 128]
        [--evaluations 2000] [--large 20000] [--lr 0.05]

LD3 (Tong et al., ICLR 2025) learns a few-step schedule by gradient through the sampler against
a teacher's samples. Here, for the demo EPS and flow models, per sampler (Euler, DPM++2M) and
step count, every method below is judged by the held-out distance of `benchmarks.vrg_plus`
(`HeldOut`: the mean squared distance per dimension, to the converged samples from the same
noise, of ComfyUI's own sampler on the method's schedule; 128 held-out noises per seed):

* **VRG+** — `search_schedule` as it is (ComfyUI's sampler function, the pool of
  `vrg_plus.candidates`), at the default budget and at the large one;
* **LD3 from pool** — the teacher (DPM++2M on the search's 40-point grid, from the search's own
  noise seed, never the held-out noise), the pool schedule (`candidates` and the base) with the
  least error on the first `SELECT_SAMPLES` teacher noises as the start, then Adam (cosine-decayed learning rate) on the inner
  levels' log-σ gaps (`to_theta`: softmax of the gaps between σ_0 and the model's σ_min, so σ_0
  and the final 0 are held and the levels stay descending) with the loss = mean squared distance
  of the differentiable sampler's output (`run_sampler`, the same formulas as ComfyUI's Euler and
  DPM++2M, checked per cell) to the teacher's samples, backpropagated through the model (for the
  EPS model, whose timestep is σ rounded to its table, through the interpolated timestep:
  `differentiable_denoise`);
* **VRG+ → LD3** — the same gradient refinement started from VRG+'s result: VRG+ at half the
  budget then LD3 on the other half, and VRG+ at the default budget then LD3 up to the large one.

Evaluations are latent-evaluations (one model call on B samples costs B): the teacher, the start
selection, every forward step, a backward pass counted as 2x its forward, and a final
full-teacher check of the start and the last iterate (the better is returned, as VRG+ returns
its least measured error). Deterministic (seeded noise, fixed minibatch order, CPU).
Writes ld3.json and ld3.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vrg_core.demo import make_context
from vrg_core.demo.host import DemoHost, ksampler_start
from vrg_core.parameterization import noise_level_grid
from vrg_core.search import DEFAULT_EVALUATIONS, DEFAULT_GRID, sample
from vrg_core.search.schedule_search import usable

from .backend import load_backend
from .common import RESULTS, command_line, log, mean_std
from .subjects import demo_subject
from .vrg_plus import BASE, NAMES, SEARCH_DIGIT, HeldOut, base_sigmas, candidates, search

SELECT_SAMPLES = 4  # teacher noises on which the pool start is chosen
BACKWARD_FACTOR = 2  # a backward pass costs twice its forward
MIN_GAP = 1e-4  # least log-σ gap (a fraction of the range) of a start schedule


@dataclasses.dataclass
class Counter:
    evaluations: int = 0

    def spend(self, count: int) -> None:
        self.evaluations += int(count)


@dataclasses.dataclass(frozen=True)
class TeacherTargets:
    """B starting noises ε (the search's seed) and the teacher's final samples from them: the gradient
    refinement's targets (the search's own teacher is `vrg_core.search.Teacher`)."""

    eps_start: Callable[[int, float], torch.Tensor]
    final: torch.Tensor
    index: torch.Tensor


def continuous_timestep(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """The timestep interpolated linearly in log σ in the ascending table (differentiable in σ)."""
    level = sigma.log().clamp(float(log_sigmas[0]), float(log_sigmas[-1]))
    low = (torch.searchsorted(log_sigmas, level.detach().float()) - 1).clamp(0, len(log_sigmas) - 2)
    lo, hi = log_sigmas[low].to(level.dtype), log_sigmas[low + 1].to(level.dtype)
    return low.to(level.dtype) + (level - lo) / (hi - lo)


def differentiable_denoise(model, digit: int):
    """`DemoHost(model, digit).denoise` with the same values, and gradients in σ also through the network's timestep.

    The EPS model rounds σ to the nearest table timestep (`discrete_timestep`), which autograd
    sees as constant; the forward pass keeps the rounded timestep and the backward pass goes
    through the timestep interpolated in log σ (a straight-through estimate). Flow models' timestep
    is already continuous.
    """
    def denoise(x: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float().reshape(-1).expand(x.shape[0])
        t = model.timestep(sigma)
        if not model.kind.is_flow:
            smooth = continuous_timestep(sigma, model.log_sigmas)
            t = t + (smooth - smooth.detach())
        out = model.net(model.network_input(x, sigma), t, context=make_context(torch.full_like(index, digit))).float()
        return x - out * sigma.reshape(-1, 1, 1, 1)

    return denoise


def teacher_targets(model, digit: int, seed: int, sigma0: float, count: int, counter: Counter) -> TeacherTargets:
    """DPM++2M on the search's grid (σ_0 down to σ_min, then 0) from `count` noises of `seed`, the KSampler's start."""
    start = ksampler_start(model, seed)
    grid = noise_level_grid(model.sigma_min, sigma0, DEFAULT_GRID, model.kind)[::-1].copy()
    index = torch.arange(count)
    final = sample(DemoHost(model, digit).denoise, start(count, sigma0), np.append(grid, 0.0), "dpmpp_2m", index)
    counter.spend(count * len(grid))
    return TeacherTargets(start, final.float(), index)


def run_sampler(name: str, denoise, x: torch.Tensor, sigmas: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Euler or DPM++2M (k-diffusion's formulas) on `sigmas` (float64, may carry gradients), ending at σ = 0."""
    x, old, h_last = x.double(), None, None
    steps = len(sigmas) - 1
    for k in range(steps):
        s, s_next = sigmas[k], sigmas[k + 1]
        d = denoise(x.float(), s.float().expand(x.shape[0]), index).double()
        if k == steps - 1:  # the step to σ = 0 returns the prediction
            return d
        h = torch.log(s) - torch.log(s_next)
        if name == "dpmpp_2m" and old is not None:
            r = h_last / h
            d_used = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * old
        else:
            d_used = d
        x = (s_next / s) * x + (1 - s_next / s) * d_used
        old, h_last = d, h
    return x


def loss(name: str, denoise, teacher: TeacherTargets, sigmas: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Mean squared distance per dimension of the sampler's output to the teacher's samples `index`."""
    x = teacher.eps_start(len(teacher.index), float(sigmas[0].detach()))[index]
    return (run_sampler(name, denoise, x, sigmas, index) - teacher.final[index].double()).pow(2).mean()


def to_theta(sigmas: np.ndarray, floor: float) -> torch.Tensor:
    """Logits of the log-σ gaps σ_0 → σ_1 → … → σ_{N−1} → `floor` (the softmax gives them back)."""
    levels = np.log(np.r_[sigmas[:-1], floor])
    gaps = np.maximum(-np.diff(levels), MIN_GAP * (levels[0] - levels[-1]))
    return torch.tensor(np.log(gaps / gaps.sum()), dtype=torch.float64)


def to_sigmas(theta: torch.Tensor, sigma0: float, floor: float) -> torch.Tensor:
    """σ_0, the levels from the gaps (descending, above `floor`), then 0 (differentiable in `theta`)."""
    top = np.log(sigma0)
    gaps = torch.softmax(theta, 0) * (top - np.log(floor))
    levels = torch.exp(top - torch.cumsum(gaps, 0)[:-1])
    return torch.cat([torch.tensor([sigma0], dtype=torch.float64), levels, torch.zeros(1, dtype=torch.float64)])


def full_loss(name, denoise, teacher, sigmas, counter: Counter) -> float:
    with torch.no_grad():
        value = float(loss(name, denoise, teacher, torch.as_tensor(sigmas, dtype=torch.float64), teacher.index))
    counter.spend(len(teacher.index) * (len(sigmas) - 1))
    return value


def plan(evaluations: int) -> tuple[int, int]:
    """(teacher noises, minibatch) for a gradient refinement of `evaluations`."""
    return int(np.clip(evaluations // 160, 4, 100)), (4 if evaluations <= 5000 else 10)


def select_start(name, denoise, teacher, pool: dict, counter: Counter) -> str:
    """The pool schedule with the least error on the first `SELECT_SAMPLES` teacher noises."""
    index = teacher.index[:SELECT_SAMPLES]
    errors = {}
    with torch.no_grad():
        for label, sigmas in pool.items():
            errors[label] = float(loss(name, denoise, teacher, torch.as_tensor(sigmas, dtype=torch.float64), index))
            counter.spend(len(index) * (len(sigmas) - 1))
    return min(errors, key=errors.get)


def ld3(model, digit: int, sampler: str, seed: int, top: float, evaluations: int, lr: float,
        start: np.ndarray | None = None, pool: dict | None = None) -> dict:
    """LD3-style refinement within `evaluations`, from schedule `start` or the best of `pool` on the teacher
    (whose trajectories start at σ = `top`, the base schedule's σ_0, as the search's)."""
    t0 = time.perf_counter()
    counter, denoise = Counter(), differentiable_denoise(model, digit)
    count, batch = plan(evaluations)
    teacher = teacher_targets(model, digit, seed, top, count, counter)
    origin = "VRG+"
    if start is None:
        origin = select_start(sampler, denoise, teacher, pool, counter)
        start = pool[origin]
    steps, sigma0 = len(start) - 1, float(start[0])
    floor = min(model.sigma_min, float(start[-2]))
    per_iteration = (1 + BACKWARD_FACTOR) * batch * steps
    iterations = max((evaluations - counter.evaluations - 2 * count * steps) // per_iteration, 0)
    theta = to_theta(start, floor).requires_grad_()
    optimiser = torch.optim.Adam([theta], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: 0.5 * (1 + np.cos(np.pi * k / max(iterations, 1))))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    for it in range(iterations):
        index = order[(torch.arange(batch) + it * batch) % count]
        optimiser.zero_grad()
        loss(sampler, denoise, teacher, to_sigmas(theta, sigma0, floor), index).backward()
        optimiser.step()
        decay.step()
        counter.spend(per_iteration)
    final = to_sigmas(theta.detach(), sigma0, floor).numpy()
    before = full_loss(sampler, denoise, teacher, start, counter)
    after = full_loss(sampler, denoise, teacher, final, counter)
    return {"sigmas": final if after < before else np.asarray(start, dtype=np.float64), "from": origin,
            "teacher_loss": [before, after], "kept": "last iterate" if after < before else "start",
            "iterations": iterations, "teacher_samples": count, "minibatch": batch,
            "evaluations": counter.evaluations, "seconds": time.perf_counter() - t0}


def sampler_gap(held: HeldOut, model, digit: int, sampler: str, searched, sigmas: np.ndarray, seed: int) -> float:
    """Largest difference between `run_sampler` and the sampler the search runs, on 4 noises (a diagnostic)."""
    index = torch.arange(4)
    x = ksampler_start(model, seed)(4, float(sigmas[0]))
    with torch.no_grad():
        ours = run_sampler(sampler, differentiable_denoise(model, digit), x, torch.as_tensor(sigmas, dtype=torch.float64), index)
    theirs = sample(DemoHost(model, digit).denoise, x, sigmas, searched, index)
    return float((ours - theirs).abs().max())


def timed_search(backend, subject, sampler: str, steps: int, seed: int, evaluations: int, digit: int) -> tuple:
    t0 = time.perf_counter()
    r = search(backend, subject, sampler, steps, seed, evaluations, digit)
    return r, time.perf_counter() - t0


def run_cell(held: HeldOut, subject, sampler: str, steps: int, a) -> dict:
    model = subject.extra["model"]
    base = base_sigmas(held.backend, subject, BASE[subject.name], steps, sampler)
    pool = candidates(held.backend, subject, steps, sampler)
    start_pool = {k: s for k, s in {**pool, "base": base}.items() if usable(k, s, steps, float(base[0])) is not None}
    searched = held.backend.search_sampler(sampler, subject.sampling)
    cell = {"sampler": sampler, "steps": steps, "rows": {}, "runs": [],
            "sampler_gap": sampler_gap(held, model, a.digit, sampler, searched, base, 0)}
    large, half = a.large, a.evaluations // 2

    def add(label: str, i: int, sigmas, evaluations: int, seconds: float, **extra) -> None:
        row = {"distance": held.distance(i, sampler, sigmas), "evaluations": int(evaluations), "seconds": seconds,
               "sigmas": np.asarray(sigmas).tolist(), **extra}
        cell["rows"].setdefault(label, []).append(row)

    for i, seed in enumerate(a.seeds):
        fixed = {k: held.distance(i, sampler, s) for k, s in start_pool.items()}
        best = min(fixed, key=fixed.get)
        add("best fixed schedule (held-out pick)", i, start_pool[best], 0, 0.0, name=best)
        r, sec = timed_search(held.backend, subject, sampler, steps, seed, a.evaluations, a.digit)
        add(f"VRG+ ({a.evaluations})", i, r.sigmas, r.evaluations, sec, chosen=r.chosen)
        r_large, sec_large = timed_search(held.backend, subject, sampler, steps, seed, large, a.digit)
        add(f"VRG+ ({large})", i, r_large.sigmas, r_large.evaluations, sec_large, chosen=r_large.chosen)
        for budget in (a.evaluations, large):
            g = ld3(model, a.digit, sampler, seed, float(base[0]), budget, a.lr, pool=start_pool)
            add(f"LD3 from pool ({budget})", i, g.pop("sigmas"), g.pop("evaluations"), g.pop("seconds"), **g)
        r_half, sec_half = timed_search(held.backend, subject, sampler, steps, seed, half, a.digit)
        for first, sec_first, nominal, budget in ((r_half, sec_half, half, a.evaluations),
                                                  (r, sec, a.evaluations, large)):
            g = ld3(model, a.digit, sampler, seed, float(base[0]), budget - first.evaluations, a.lr,
                    start=first.sigmas)
            add(f"VRG+ ({nominal}) → LD3 ({budget} total)", i, g.pop("sigmas"),
                first.evaluations + g.pop("evaluations"), sec_first + g.pop("seconds"), **g)
        log(f"{subject.name} {sampler}/{steps} seed {seed}: " + ", ".join(
            f"{k} {v[-1]['distance']:.4g}" for k, v in cell["rows"].items()))
    return cell


def summary(results: dict) -> list[str]:
    """Per method, paired with VRG+ at the default budget over every cell and seed: geometric-mean ratio, wins."""
    reference = f"VRG+ ({results['evaluations']})"
    ratios: dict[str, list[float]] = {}
    for s in results["subjects"]:
        for c in s["cells"]:
            for label, vals in c["rows"].items():
                ratios.setdefault(label, []).extend(
                    v["distance"] / r["distance"] for v, r in zip(vals, c["rows"][reference]))
    lines = [f"## Summary: distance / {reference}'s, paired (every cell and seed)", "",
             "| method | geometric mean ratio | lower / equal / higher | per-cell mean ratios |", "|---|---|---|---|"]
    for label, r in ratios.items():
        r = np.asarray(r)
        cells = np.exp(np.log(r).reshape(-1, len(results["seeds"])).mean(axis=1))
        lines.append(f"| {label} | {np.exp(np.log(r).mean()):.3f} | {(r < 1 - 1e-9).sum()} / "
                     f"{(np.abs(r - 1) <= 1e-9).sum()} / {(r > 1 + 1e-9).sum()} | "
                     f"{' '.join(f'{x:.2f}' for x in cells)} |")
    return lines + ["", "Cells in order: " + ", ".join(
        f"{s['name']} {c['sampler']}/{c['steps']}" for s in results["subjects"] for c in s["cells"]), ""]


def report(results: dict) -> str:
    lines = [f"# VRG+ (linearised Nelder–Mead) vs LD3-style gradient refinement — `{results['command']}`", "",
             f"{results['backend']}, {results['date']}, {results['seconds'] / 60:.0f} min, torch on 1 thread. "
             f"Seeds {results['seeds']}: each seed is one search / one teacher (its own noise) and "
             f"{results['samples']} held-out noises. distance = mean squared distance per dimension to the converged "
             "samples (DPM++2M, 200 steps) from the same noise, with ComfyUI's sampler on each schedule; mean ± std "
             "over seeds. evaluations = latent-evaluations (backward = 2x forward), mean over seeds; wall = seconds "
             f"per seed (mean). LD3: Adam, lr {results['lr']} cosine-decayed, teacher DPM++2M on the {DEFAULT_GRID}-point grid.", ""]
    lines += ["Evaluation accounting (N steps, one model call a step for both samplers): VRG+ counts its own "
              "(`SearchResult.evaluations`: teacher samples × (grid + checks × N)). LD3 with E evaluations: "
              "B = clip(E // 160, 4, 100) teacher noises × 40 grid calls; LD3 from pool adds "
              f"(pool size) × {SELECT_SAMPLES} × N to pick the start; each Adam iteration on a minibatch of m "
              "(4 for E ≤ 5000, else 10) costs (1 + 2) × m × N (forward, backward = 2x); a final check of the start "
              "and the last iterate on all B noises costs 2 × B × N; the iterations are as many as fit. VRG+ → LD3 "
              "rows: VRG+'s own evaluations plus LD3's on the rest of the total (its own teacher, VRG+'s is not "
              "reused). The held-out scoring and the per-cell sampler check are not counted (they are the "
              "benchmark, not the method).", ""]
    lines += summary(results)
    for s in results["subjects"]:
        lines += [f"## {s['title']}", ""]
        for c in s["cells"]:
            lines += [f"### {NAMES.get(c['sampler'], c['sampler'])}, {c['steps']} steps", "",
                      "| method | distance | evaluations | wall s | LD3: iterations, teacher noises, start → kept |",
                      "|---|---|---|---|---|"]
            for label, vals in c["rows"].items():
                note = ""
                if "iterations" in vals[0]:
                    note = "; ".join(f"{v['iterations']} it, {v['teacher_samples']} noises, {v['from']} → {v['kept']}"
                                     for v in vals)
                elif "name" in vals[0]:
                    note = ", ".join(v["name"] for v in vals)
                lines.append(f"| {label} | {mean_std([v['distance'] for v in vals])} | "
                             f"{np.mean([v['evaluations'] for v in vals]):.0f} | "
                             f"{np.mean([v['seconds'] for v in vals]):.1f} | {note} |")
            lines += ["", f"- run_sampler vs the search's sampler function, max |Δ| on 4 noises: {c['sampler_gap']:.2g}",
                      ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ld3", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, demo EPS, Euler, 5 steps")
    ap.add_argument("--out", type=Path, help="default benchmarks/results (quick: a new temporary folder)")
    ap.add_argument("--subjects", default="eps,flow")
    ap.add_argument("--samplers", nargs="+", default=["euler", "dpmpp_2m"], choices=["euler", "dpmpp_2m"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=128, help="held-out noises per seed (default 128)")
    ap.add_argument("--evaluations", type=int, default=DEFAULT_EVALUATIONS, help="the default budget (2000)")
    ap.add_argument("--large", type=int, default=10 * DEFAULT_EVALUATIONS, help="the large budget (20000)")
    ap.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate on the gap logits")
    ap.add_argument("--digit", type=int, default=SEARCH_DIGIT, choices=range(10),
                    help="the prompt VRG+ and LD3 are fitted with (held-out noises: all digits)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.quick:
        a.subjects, a.samplers, a.steps, a.seeds = "eps", ["euler"], [5], 1
    a.seeds = list(range(a.seeds))
    out = a.out or (Path(tempfile.mkdtemp(prefix="ld3-quick-")) if a.quick else RESULTS)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    backend = load_backend()
    results = {"command": command_line("ld3", backend, argv),
               "backend": backend.version, "date": time.strftime("%Y-%m-%d"), "seeds": a.seeds,
               "samples": a.samples, "evaluations": a.evaluations, "large": a.large, "lr": a.lr, "subjects": []}
    for name in a.subjects.split(","):
        subject = demo_subject(name)
        for p in subject.extra["model"].net.parameters():
            p.requires_grad_(False)  # gradients flow to the schedule only
        held = HeldOut(backend, subject, a.seeds, a.samples)
        cells = [run_cell(held, subject, sampler, steps, a) for sampler in a.samplers for steps in a.steps]
        results["subjects"].append({"name": name, "title": subject.title, "cells": cells})
    results["seconds"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "ld3.json").write_text(json.dumps(results, indent=1))
    (out / "ld3.md").write_text(report(results))
    print(report(results))
    log(f"wrote {out / 'ld3.md'} in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
