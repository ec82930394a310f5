"""Does VRG make better samples at equal steps? Base schedules vs VRG (fixed and paper start).

    python -m benchmarks.quality [--quick] [--out benchmarks/results] [--seeds 3] [--samples 1000]

Run it with ComfyUI's Python and ``COMFYUI_PATH`` set to use ComfyUI's own samplers and
schedulers (what users run); without it the ``k-diffusion`` package's are used (fewer schedulers).
For each subject (demo EPS, demo flow, GMM testbed) × sampler × steps × base schedule it
samples from the same noise (paired) with the base schedule, VRG with the start held (γ auto)
and VRG with the official soft start penalty (γ auto), scores every seed's sample set, and
records CPE before/after. Also: the γ sweep at 10 steps, the metric's noise floor (real vs real),
a 100-step reference, and the paper's claims (error moments per level, CPE–metric
correlation, training-set vs held-out tables, the GMM trajectory study). Writes
``quality.md``, ``quality.json`` and PNG plots into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.objective import cumulative_error
from vrg_core.optimize import optimize_sigmas

from . import claims, report
from .backend import EPS_SCHEDULERS, FLOW_SCHEDULERS, SAMPLERS, Unavailable, load_backend
from .common import RESULTS, command_line, log
from .subjects import Subject, demo_subject, gmm_subject

GAMMAS = (0.0, 0.01, 0.02, 0.05, 0.1)


@dataclasses.dataclass(frozen=True)
class Config:
    quick: bool
    seeds: tuple[int, ...]
    samples: int  # per seed, demo models
    gmm_samples: int  # per seed, GMM
    steps: tuple[int, ...]
    samplers: tuple[str, ...]
    eps_schedulers: tuple[str, ...]
    flow_schedulers: tuple[str, ...]
    gammas: tuple[float, ...]
    sweep_samplers: tuple[str, ...]
    reference_steps: int
    grid: int
    per_level: int
    subjects: tuple[str, ...]

    @classmethod
    def make(cls, quick: bool, seeds: int | None, samples: int | None, subjects: tuple[str, ...]) -> "Config":
        if quick:
            return cls(True, tuple(range(seeds or 2)), samples or 100, 1000, (5, 10), SAMPLERS, ("karras", "normal"),
                       ("simple",), (0.0, 0.05, 0.1), ("euler",), 50, 24, 32, subjects)
        return cls(False, tuple(range(seeds or 3)), samples or 1000, 4000, (5, 10, 20), SAMPLERS, EPS_SCHEDULERS,
                   FLOW_SCHEDULERS, GAMMAS, ("euler", "dpmpp_2m"), 100, 48, 128, subjects)

    def schedulers(self, subject: Subject) -> tuple[str, ...]:
        return self.flow_schedulers if subject.sampling.kind.is_flow else self.eps_schedulers

    def sweep_scheduler(self, subject: Subject) -> str:
        return "simple" if subject.sampling.kind.is_flow else "karras"

    def samples_for(self, subject: Subject) -> int:
        return self.gmm_samples if subject.name == "gmm" else self.samples


class Runner:
    """Samples one subject, one sample set per seed; identical (sampler, σ) runs are done once."""

    def __init__(self, backend, subject: Subject, cfg: Config, keep_first: bool = False):
        self.backend, self.subject, self.cfg = backend, subject, cfg
        self.batches = [subject.batch(seed, cfg.samples_for(subject)) for seed in cfg.seeds]
        self.denoisers = [subject.make_denoise(b) for b in self.batches]
        self.cache: dict = {}
        self.first: dict | None = {} if keep_first else None  # run key -> the first seed's samples
        self.evals = 0
        self.sample_seconds = 0.0

    @staticmethod
    def key(sampler: str, sigmas: torch.Tensor) -> tuple:
        return sampler, tuple(np.round(sigmas.double().numpy(), 9))

    def first_samples(self, sampler: str, sigmas: torch.Tensor) -> torch.Tensor:
        """The first seed's samples of a run (needs `keep_first`)."""
        self.run(sampler, sigmas)
        return self.first[self.key(sampler, sigmas)]

    def run(self, sampler: str, sigmas: torch.Tensor) -> list[float]:
        """The metric of each seed's sample set (same noise and sampler seed for every schedule)."""
        key = self.key(sampler, sigmas)
        if key not in self.cache:
            values = []
            for index, (batch, denoise) in enumerate(zip(self.batches, self.denoisers)):
                calls = [0]

                def counted(x, s, denoise=denoise, calls=calls):
                    calls[0] += 1
                    return denoise(x, s)

                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = self.backend.sample(sampler, counted, batch.noise, sigmas, self.subject.sampling, seed=batch.seed)
                self.sample_seconds += time.perf_counter() - t0
                self.evals += calls[0] * len(batch.noise)
                values.append(self.subject.metric(out))
                if self.first is not None and index == 0:
                    self.first[key] = out.double()
            self.cache[key] = values
        return self.cache[key]


def vrg(base: torch.Tensor, table: ErrorTable, gamma, start: str):
    r = optimize_sigmas(base, table, gamma=gamma, start=start)
    return torch.tensor(r.sigmas, dtype=torch.float32), r


def run_subject(backend, subject: Subject, cfg: Config) -> dict:
    t0 = time.perf_counter()
    table = subject.table("heldout", cfg.grid, cfg.per_level)
    log(f"{subject.name}: error table {len(table.sigmas)} levels × {cfg.per_level} in {time.perf_counter() - t0:.1f} s")
    runner = Runner(backend, subject, cfg)
    rows, unavailable = [], set()
    for sched in cfg.schedulers(subject):
        for steps in cfg.steps:
            try:
                base = backend.sigmas(subject.sampling, sched, steps)
            except Unavailable as e:
                unavailable.add(f"{sched}: {e}")
                continue
            variants = {"base": (base, None, None)}
            for start in ("fixed", "paper"):
                sig, r = vrg(base, table, "auto", start)
                variants[f"vrg_{start}"] = (sig, r, start)
            for sampler in cfg.samplers:
                for variant, (sig, r, _start) in variants.items():
                    try:
                        values = runner.run(sampler, sig)
                    except Unavailable as e:
                        unavailable.add(f"{sampler}: {e}")
                        break
                    rows.append({"sampler": sampler, "scheduler": sched, "steps": steps, "variant": variant,
                                 "gamma": None if r is None else r.gamma, "values": values,
                                 "cpe": cumulative_error(sig.double(), table).total,
                                 "sigma0": float(sig[0]), "sigmas": sig.tolist()})
            log(f"{subject.name}: {sched}/{steps} done; {runner.evals / 1e6:.2f} M evals, "
                f"{runner.sample_seconds:.0f} s sampling")
    sweep = []
    sched = cfg.sweep_scheduler(subject)
    try:
        base = backend.sigmas(subject.sampling, sched, 10)
    except Unavailable:
        base = None
    for sampler in cfg.sweep_samplers if base is not None else ():
        base_values = runner.run(sampler, base)
        for gamma in cfg.gammas:
            for start in ("fixed", "paper"):
                sig, r = vrg(base, table, gamma, start)
                sweep.append({"sampler": sampler, "scheduler": sched, "steps": 10, "gamma": gamma, "start": start,
                              "values": runner.run(sampler, sig), "base_values": base_values,
                              "cpe": r.cpe_after, "cpe_base": r.cpe_before, "sigma0": float(sig[0])})
    log(f"{subject.name}: γ sweep done")
    ref_sched = cfg.sweep_scheduler(subject)
    reference = {"sampler": "dpmpp_2m", "scheduler": ref_sched, "steps": cfg.reference_steps,
                 "values": runner.run("dpmpp_2m", backend.sigmas(subject.sampling, ref_sched, cfg.reference_steps))}
    floor = [subject.floor(cfg.samples_for(subject), s) for s in cfg.seeds]
    log(f"{subject.name}: reference and floor done")
    return {"name": subject.name, "title": subject.title, "metric": subject.metric_name, "kind": subject.sampling.kind.value,
            "samples_per_seed": cfg.samples_for(subject), "rows": rows, "sweep": sweep, "reference": reference,
            "floor": floor, "unavailable": sorted(unavailable), "evals": runner.evals,
            "weights": subject.extra.get("weights", ""),
            "sample_seconds": runner.sample_seconds, "seconds": time.perf_counter() - t0,
            "table": {"sigmas": table.sigmas.tolist(), "w": table.mean_mse.tolist(), "se": table.standard_error.tolist()}}


def merge(runs: list[dict]) -> dict:
    """One result from runs made with the same settings on different subjects (e.g. in parallel)."""
    first = runs[0]
    for r in runs[1:]:
        if r["config"] | {"subjects": None} != first["config"] | {"subjects": None} or r["backend"] != first["backend"]:
            raise SystemExit("cannot merge runs made with different settings or backends")
    order = ["eps", "flow", "gmm"]
    subjects = sorted((s for r in runs for s in r["subjects"]), key=lambda s: order.index(s["name"]) if s["name"] in order else 9)
    return {**first, "subjects": subjects, "claims": {k: v for r in runs for k, v in r["claims"].items()},
            "command": " & ".join(r["command"] for r in runs), "seconds": max(r["seconds"] for r in runs),
            "config": {**first["config"], "subjects": [s["name"] for s in subjects]}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (≤ 3 min): fewer cells, seeds and samples")
    ap.add_argument("--out", type=Path, help="where quality.md, quality.json and PNGs go "
                    "(default benchmarks/results; with --quick a new temporary folder, so a smoke never overwrites them)")
    ap.add_argument("--seeds", type=int, help="sample sets per cell (default 3; quick 2)")
    ap.add_argument("--samples", type=int, help="samples per seed for the demo models (default 1000; quick 100)")
    ap.add_argument("--subjects", default="eps,flow,gmm", help="comma-separated: eps, flow, gmm")
    ap.add_argument("--backend", choices=["comfyui", "k-diffusion"], help="default: comfyui when COMFYUI_PATH is set")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine 2 threads ran 2-8x slower)")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="only merge quality.json files of runs on different --subjects into one report in --out")
    a = ap.parse_args(argv)
    if a.out is None:
        a.out = Path(tempfile.mkdtemp(prefix="vrg-quality-quick-")) if a.quick and not a.merge else RESULTS
    if a.merge:
        results = merge([json.loads(p.read_text()) for p in a.merge])
        results["command"] += "; then python -m benchmarks.quality --merge <a>/quality.json <b>/quality.json"
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "quality.json").write_text(json.dumps(results, indent=1))
        report.write_report(results, a.out)
        log(f"merged {len(a.merge)} runs into {a.out / 'quality.md'}")
        return
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cfg = Config.make(a.quick, a.seeds, a.samples, tuple(a.subjects.split(",")))
    backend = load_backend(a.backend)
    log(f"backend {backend.version}; {'quick' if cfg.quick else 'full'} run; seeds {cfg.seeds}; "
        f"{cfg.samples} samples/seed (GMM {cfg.gmm_samples})")
    subjects = []
    for name in cfg.subjects:
        subjects.append(gmm_subject(cfg.quick) if name == "gmm" else demo_subject(name))
        log(f"loaded {name}")
    results = {"config": dataclasses.asdict(cfg), "backend": backend.version,
               "python": platform.python_version(), "torch": torch.__version__, "threads": a.threads,
               "command": command_line("quality", backend, argv),
               "subjects": []}
    for subject in subjects:
        results["subjects"].append(run_subject(backend, subject, cfg))
    results["claims"] = claims.run_claims(backend, subjects, cfg, results)
    log("claims done")
    results["seconds"] = time.perf_counter() - t0
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(json.dumps(results, indent=1))
    report.write_report(results, a.out)
    log(f"wrote {a.out / 'quality.md'} in {results['seconds'] / 60:.1f} min total")


if __name__ == "__main__":
    main()
