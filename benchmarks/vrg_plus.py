"""VRG+ (the schedule searched on the model) next to base, VRG and the shipped tables, same sampler and steps.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.vrg_plus [--quick] [--out benchmarks/results]

For the demo EPS model (SD1.5 schedule; base Karras; shipped AYS-SD1 and GITS) and the demo
flow model (shift 3; base simple; shipped OSS-Flux and simple) × euler / dpmpp_2m /
euler_ancestral × 5 and 10 steps it samples every schedule from the same noise (paired, as
`benchmarks.quality`), 3 seeds × 1 000 samples, FD to held-out digits. VRG+ is
`vrg_core.search.search_schedule` with its defaults (2 000 evaluations, its own noise seed 0)
and the same error table as VRG. The converged reference is DPM++2M at 200 steps; "RMS to
200" is the per-dimension RMS distance of the first seed's samples to the reference's
samples from the same noise (deterministic samplers only). Writes vrg_plus.json and the
"VRG+" section of quality.md in --out (kept when `benchmarks.quality` rewrites the file).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vrg_core.demo import make_context
from vrg_core.demo.sampling import start_noise
from vrg_core.optimize import optimize_sigmas
from vrg_core.search import search_schedule

from .backend import Unavailable, load_backend
from .quality import RESULTS, Config, Runner, log
from .report import SECTION_END, SECTION_START, ms
from .subjects import demo_subject

SHIPPED = {"eps": ("ays_sd1", "gits"), "flow": ("oss_flux", "simple")}
BASE = {"eps": "karras", "flow": "simple"}
NAMES = {"karras": "Karras", "simple": "simple", "ays_sd1": "AYS-SD1", "gits": "GITS", "oss_flux": "OSS-Flux",
         "euler": "Euler", "dpmpp_2m": "DPM++2M", "euler_ancestral": "Euler a"}
REFERENCE_STEPS = 200


def searched(subject, base: torch.Tensor, table, sampler: str, evaluations: int):
    """VRG+ on the demo model: class-conditional like the benchmark's sample sets, cfg 1."""
    model = subject.extra["model"]
    with torch.inference_mode():
        return search_schedule(lambda x, s, i: model.denoise(x, s, make_context(i % 10)),
                               start_noise(model, float(base[0]), 0), base.double().numpy(), table, sampler,
                               evaluations)


def rms_to(runner: Runner, sampler: str, sigmas: torch.Tensor, reference: torch.Tensor) -> float | None:
    if sampler == "euler_ancestral":
        return None
    return float((runner.first_samples(sampler, sigmas) - reference).pow(2).mean().sqrt())


def run_subject(backend, name: str, cfg: Config, evaluations: int, steps_list, samplers) -> dict:
    subject = demo_subject(name)
    table = subject.table("heldout", cfg.grid, cfg.per_level)
    runner = Runner(backend, subject, cfg, keep_first=True)
    ref_sigmas = backend.sigmas(subject.sampling, BASE[name], REFERENCE_STEPS)
    reference = {"values": runner.run("dpmpp_2m", ref_sigmas)}
    ref_samples = runner.first_samples("dpmpp_2m", ref_sigmas)
    log(f"{name}: reference {ms(reference['values'])}")
    cells, unavailable = [], set()
    for sampler in samplers:
        for steps in steps_list:
            base = backend.sigmas(subject.sampling, BASE[name], steps)
            t0 = time.perf_counter()
            plus = searched(subject, base, table, sampler, evaluations)
            seconds = time.perf_counter() - t0
            schedules = {"base": base, "vrg": torch.tensor(optimize_sigmas(base, table).sigmas, dtype=torch.float32),
                         "vrg_plus": torch.tensor(plus.sigmas, dtype=torch.float32)}
            for shipped in SHIPPED[name]:
                try:
                    schedules[shipped] = backend.sigmas(subject.sampling, shipped, steps)
                except Unavailable as e:
                    unavailable.add(f"{shipped}: {e}")
            rows = {}
            for label, sig in schedules.items():
                rows[label] = {"values": runner.run(sampler, sig), "sigmas": sig.tolist(),
                               "rms_to_reference": rms_to(runner, sampler, sig, ref_samples)}
            cells.append({"sampler": sampler, "steps": steps, "rows": rows, "chosen": plus.chosen,
                          "evaluations": plus.evaluations, "search_seconds": plus.search_seconds,
                          "model_seconds": plus.model_seconds, "seconds": seconds,
                          "objectives": {k: [o.discretisation, o.variance] for k, o in plus.objectives.items()}})
            log(f"{name}: {sampler}/{steps}: " + ", ".join(f"{k} {np.mean(r['values']):.3g}" for k, r in rows.items())
                + f"; VRG+ chose {plus.chosen}, {plus.evaluations} evaluations, {seconds:.1f} s")
    return {"name": name, "title": subject.title, "reference": reference, "cells": cells,
            "unavailable": sorted(unavailable), "samples_per_seed": cfg.samples}


def targets(subject: dict) -> list[str]:
    """The issue's targets per cell, with the numbers."""
    out = []
    ref = float(np.mean(subject["reference"]["values"]))
    for cell in subject["cells"]:
        fd = {k: float(np.mean(r["values"])) for k, r in cell["rows"].items()}
        shipped = {k: v for k, v in fd.items() if k in SHIPPED[subject["name"]]}
        best_name = min(shipped, key=shipped.get) if shipped else None
        plus, tag = fd["vrg_plus"], f"{NAMES[cell['sampler']]}/{cell['steps']}"
        checks = [f"vs VRG alone {100 * (plus / fd['vrg'] - 1):+.1f} % ({'met' if plus <= fd['vrg'] else 'MISSED'})"]
        if best_name:
            change = 100 * (plus / shipped[best_name] - 1)
            if cell["steps"] <= 5:
                checks.append(f"vs best shipped {NAMES[best_name]} {change:+.1f} % (target ≤ −20 %: "
                              f"{'met' if change <= -20 else 'MISSED'})")
            else:
                checks.append(f"vs best shipped {NAMES[best_name]} {change:+.1f} % (target ≤ 0: "
                              f"{'met' if change <= 0 else 'MISSED'})")
        if cell["steps"] >= 10:
            off = 100 * (plus / ref - 1)
            checks.append(f"vs 200-step {off:+.1f} % (target ≤ +10 %: {'met' if off <= 10 else 'MISSED'})")
        out.append(f"- {tag}: " + "; ".join(checks))
    return out


def section(results: dict) -> str:
    lines = [SECTION_START, "", "## VRG+ — the schedule searched on the model (`vrg_core.search`)", "",
             f"Made by `{results['command']}` ({results['backend']}) on {results['date']}; "
             f"{results['seconds'] / 60:.0f} min. Same paired noise, seeds and FD as above "
             f"({len(results['config']['seeds'])} seeds × {results['config']['samples']} samples); VRG = VRG fixed. "
             "VRG+ = `search_schedule` defaults: DPM++2M teacher on a 100-point grid, step costs from its Gram "
             "matrix, a dynamic programme per damping exponent, a check of the searched schedules, VRG alone "
             "and the base by sampling the same teacher noise, and the two best refined on the linearised error "
             "(not for Euler a) and checked too; σ_0 held. *RMS to 200*: per-dimension "
             "RMS distance of seed 0's samples to DPM++2M/200-step samples from the same noise (pixels in [−1, 1]).",
             ""]
    for s in results["subjects"]:
        labels = ["base", "vrg", *SHIPPED[s["name"]], "vrg_plus"]
        heads = {"base": f"base ({NAMES[BASE[s['name']]]})", "vrg": "VRG", "vrg_plus": "**VRG+**"}
        lines += [f"### {s['title']}", "",
                  f"Converged reference (DPM++2M, {REFERENCE_STEPS} steps): FD {ms(s['reference']['values'])}.", "",
                  "| sampler | steps | " + " | ".join(heads.get(k, NAMES.get(k, k)) for k in labels)
                  + " | VRG+ chose | evaluations | seconds (model + search) | RMS to 200: base / VRG / VRG+ |",
                  "|---|---|" + "---|" * (len(labels) + 4)]
        for c in s["cells"]:
            r = c["rows"]
            cols = [ms(r[k]["values"]) if k in r else "n/a" for k in labels]
            rms = " / ".join("–" if r[k]["rms_to_reference"] is None else f"{r[k]['rms_to_reference']:.3f}"
                             for k in ("base", "vrg", "vrg_plus"))
            lines.append(f"| {NAMES[c['sampler']]} | {c['steps']} | " + " | ".join(cols)
                         + f" | {c['chosen']} | {c['evaluations']} | {c['model_seconds']:.1f} + "
                           f"{c['search_seconds']:.2f} | {rms} |")
        lines += ["", "Targets (FD, mean over seeds):", "", *targets(s), ""]
        if s["unavailable"]:
            lines += ["Not run with this backend: " + "; ".join(s["unavailable"]) + ".", ""]
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path) -> None:
    """Put the VRG+ section into quality.md (replacing an older one; the file is created when missing)."""
    old = path.read_text() if path.exists() else ""
    if SECTION_START in old:
        head, rest = old.split(SECTION_START, 1)
        old = head + rest.split(SECTION_END, 1)[1].lstrip("\n")
    path.write_text(old.rstrip("\n") + "\n\n" + text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.vrg_plus", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed of 100 samples, 5 steps, Euler")
    ap.add_argument("--out", type=Path, help="default benchmarks/results (quick: a new temporary folder)")
    ap.add_argument("--subjects", default="eps,flow")
    ap.add_argument("--evaluations", type=int, default=2000, help="VRG+ budget (model evaluations)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    out = a.out or (Path(tempfile.mkdtemp(prefix="vrg-plus-quick-")) if a.quick else RESULTS)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cfg = Config.make(a.quick, 1 if a.quick else None, None, tuple(a.subjects.split(",")))
    backend = load_backend()
    steps, samplers = ((5,), ("euler",)) if a.quick else ((5, 10), ("euler", "dpmpp_2m", "euler_ancestral"))
    command = " ".join(["python -m benchmarks.vrg_plus", *(sys.argv[1:] if argv is None else argv)])
    results = {"command": ("COMFYUI_PATH=<ComfyUI> " if backend.name == "comfyui" else "") + command, "backend": backend.version,
               "date": time.strftime("%Y-%m-%d"), "config": {"seeds": list(cfg.seeds), "samples": cfg.samples},
               "subjects": [run_subject(backend, name, cfg, a.evaluations, steps, samplers) for name in cfg.subjects]}
    results["seconds"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "vrg_plus.json").write_text(json.dumps(results, indent=1))
    write_section(section(results), out / "quality.md")
    log(f"wrote the VRG+ section of {out / 'quality.md'} in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
