"""How reliably a search's few noises of one prompt pick the best of the fixed schedules — the ceiling of
VRG+'s "never worse than the best other schedule" on a model where a fixed schedule is already the best.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.fixed_choice [--subject eps] [--cells euler/5 euler/10 ...]
        [--prompt-noises 512] [--all-noises 1024] [--out benchmarks/results]

Per cell, every fixed schedule the search node measures (`candidates`, as in benchmarks.vrg_plus) is
sampled with the real sampler from `--prompt-noises` noises of the search's prompt (digit 3) and from
`--all-noises` other noises of all ten digits; distance = squared distance per dimension to the same
model's converged sample (DPM++2M, 200 steps). Then `DRAWS` times, `n` of the prompt's noises are drawn
(what a search has: ~25 at 5 steps, ~15 at 10 with the default 2 000 evaluations) and each ranking rule
picks one schedule; its regret is its all-digit distance over the all-digit best's. "every prompt noise"
is the choice with all `--prompt-noises` noises: the ceiling of any choice made on one prompt.
Writes fixed_choice.json and fixed_choice.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from vrg_core.search.selection import gain_interval

from .backend import load_backend
from .common import RESULTS, command_line, log, write_results
from .subjects import demo_subject
from .vrg_plus import NAMES, SEARCH_DIGIT, HeldOut, candidates

NOISES = (15, 25, 40, 60, 120)
DRAWS = 3000
RULES = {  # [schedules, noises] per-noise distances -> a score per schedule, the least picked
    "mean": lambda x: x.mean(1),
    "mean + 1.64 s.e.": lambda x: x.mean(1) + 1.64 * x.std(1, ddof=1) / np.sqrt(x.shape[1]),
    "10 % trimmed mean": lambda x: stats.trim_mean(x, 0.1, axis=1),
    "median": lambda x: np.median(x, axis=1),
    "mean of log": lambda x: np.log(x).mean(1),
}


def regrets(prompt: np.ndarray, population: np.ndarray, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per rule, `DRAWS` regrets (population distance of the pick / the population best) from `n` prompt noises."""
    out = {rule: np.empty(DRAWS) for rule in RULES}
    for t in range(DRAWS):
        drawn = prompt[:, rng.integers(0, prompt.shape[1], n)]
        for rule, score in RULES.items():
            out[rule][t] = population[np.argmin(score(drawn))] / population.min()
    return out


def run_cell(prompt_held: HeldOut, all_held: HeldOut, subject, sampler: str, steps: int) -> dict:
    pool = candidates(prompt_held.backend, subject, steps, sampler)
    names = sorted(pool)
    prompt = np.stack([prompt_held.distances(0, sampler, pool[k]) for k in names])
    every = np.stack([all_held.distances(0, sampler, pool[k]) for k in names])
    population = every.mean(1)
    order = np.argsort(population)
    best, second = order[0], order[1]
    rng = np.random.default_rng(0)
    cell = {"sampler": sampler, "steps": steps, "names": names, "prompt_mean": prompt.mean(1).tolist(),
            "all_mean": population.tolist(),
            "runner_up": {"best": names[best], "second": names[second],
                          "gain": gain_interval(every[best], every[second])},
            "every_prompt_noise": float(population[np.argmin(prompt.mean(1))] / population.min()),
            "rules": {}}
    for n in NOISES:
        for rule, values in regrets(prompt, population, n, rng).items():
            cell["rules"].setdefault(rule, {})[n] = {"regret": float(values.mean()),
                                                     "best": float(np.mean(values < 1 + 1e-12))}
    log(f"{sampler}/{steps}: all-digit best {names[best]}, prompt best {names[np.argmin(prompt.mean(1))]}")
    return cell


def report(results: dict) -> str:
    lines = [f"# Choosing among the fixed schedules from a few noises — `{results['command']}`", "",
             f"{results['backend']}, {results['date']}, {results['seconds'] / 60:.0f} min on 2 CPU cores; "
             f"{results['title']}; {results['prompt_noises']} noises of digit {results['digit']} (the search's "
             f"prompt), {results['all_noises']} of all digits; {DRAWS} draws per count. Distance ×10³ to the "
             "converged samples (DPM++2M, 200 steps).", ""]
    for c in results["cells"]:
        r = c["runner_up"]
        top = np.argsort(c["all_mean"])[:5]
        lines += [f"## {NAMES.get(c['sampler'], c['sampler'])}, {c['steps']} steps", "",
                  "| schedule | digit 3 | all digits |", "|---|---|---|"]
        lines += [f"| {c['names'][i]} | {1e3 * c['prompt_mean'][i]:.3f} | {1e3 * c['all_mean'][i]:.3f} |" for i in top]
        lines += ["", f"All digits: {r['best']} is {100 * r['gain'][0]:+.1f} % closer than {r['second']} "
                  f"(paired 90 % interval {100 * r['gain'][1]:+.1f} to {100 * r['gain'][2]:+.1f} %). The best on every "
                  f"prompt noise is {c['every_prompt_noise']:.3f}× the all-digit best.", "",
                  "| rule | " + " | ".join(f"{n} noises" for n in NOISES) + " |", "|---|" + "---|" * len(NOISES)]
        for rule, by_n in c["rules"].items():
            lines.append(f"| {rule} | " + " | ".join(
                f"{v['regret']:.3f}× ({100 * v['best']:.0f} %)" for v in by_n.values()) + " |")
        lines += ["", "(mean regret: the pick's all-digit distance over the all-digit best's; in brackets, how "
                  "often the pick is that best)", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fixed_choice", description=__doc__.splitlines()[0])
    ap.add_argument("--subject", default="eps", choices=("eps", "flow"))
    ap.add_argument("--cells", nargs="+", default=["euler/5", "euler/10", "dpmpp_2m/5", "dpmpp_2m/10"])
    ap.add_argument("--prompt-noises", type=int, default=512)
    ap.add_argument("--all-noises", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    backend = load_backend()
    subject = demo_subject(a.subject)
    prompt_held = HeldOut(backend, subject, [50], a.prompt_noises, SEARCH_DIGIT)
    all_held = HeldOut(backend, subject, [51], a.all_noises)
    cells = [run_cell(prompt_held, all_held, subject, sampler, int(steps))
             for sampler, steps in (cell.split("/") for cell in a.cells)]
    results = {"command": command_line("fixed_choice", backend, argv), "backend": backend.version,
               "date": time.strftime("%Y-%m-%d"), "title": subject.title, "digit": SEARCH_DIGIT,
               "prompt_noises": a.prompt_noises, "all_noises": a.all_noises, "cells": cells,
               "seconds": time.perf_counter() - t0}
    write_results(a.out, "fixed_choice", results, report(results))


if __name__ == "__main__":
    main()
