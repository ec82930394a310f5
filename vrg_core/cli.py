"""`python -m vrg_core`: optimise, profile, inspect tables, and the end-to-end demo.

Every bad input ends with exit code 2 and one line `error: …` on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import VRGError
from .error_table import ErrorTable, TableInfo, now_iso
from .objective import schedule_from_text
from .optimize import METHODS, START_MODES, OptimizeResult, optimize_sigmas
from .error_table import INTERPOLATIONS
from .parameterization import ModelKind
from .schedule_file import ScheduleFile, save_schedule
from .search import DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, MAX_STEPS, SAMPLERS as SEARCH_SAMPLERS, as_sampler
from .search.family import DEFAULT_FAMILY_EVALUATIONS
from .table_io import load_table, official_trajectory_from_text, read_limited, save_table

MAX_TEXT_BYTES = 1024 * 1024
VRG_PLUS = "vrg+"  # compare's name for a schedule searched first


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise VRGError(f"{message} (see --help)")


def at_least(low: int):
    """An argparse type: a whole number ≥ `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def out_path(suffix: str, example: str):
    """An argparse type: where a new file goes — a name ending in `suffix` in a folder that exists or can be made."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"{text!r} must end in {suffix}, e.g. '{example}'")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name ending in {suffix}")
        existing = next(p for p in path.absolute().parents if p.exists())
        if not existing.is_dir():
            raise argparse.ArgumentTypeError(f"'{existing}' is a file, so {text!r} cannot be created; pick another folder")
        return path

    return parse


def _table_for(path: str, kind: str | None) -> ErrorTable:
    table = load_table(path)
    if kind is not None and ModelKind.parse(kind) != table.kind:
        raise VRGError(f"--kind {kind} does not match the table '{Path(path).name}', which was measured on a {table.kind.label} model")
    return table


def result_json(r: OptimizeResult) -> dict:
    return {
        "sigmas": r.sigmas.tolist(),
        "cpe_before": r.cpe_before,
        "cpe_after": r.cpe_after,
        "start_sigma_before": r.start_sigma_before,
        "start_sigma_after": r.start_sigma_after,
        "method": r.method,
        "start": r.start,
        "gamma": r.gamma,
        "status": r.status,
        "seconds": r.seconds,
    }


def cmd_optimize(a: argparse.Namespace) -> None:
    table = _table_for(a.table, a.kind)
    if (a.sigmas is None) == (a.trajectory is None):
        raise VRGError("give exactly one of --sigmas or --trajectory")
    if a.sigmas is not None:
        sigmas = schedule_from_text(a.sigmas, "--sigmas")
    else:
        text = read_limited(Path(a.trajectory), MAX_TEXT_BYTES).decode("utf-8", errors="replace")
        sigmas = official_trajectory_from_text(text, f"trajectory '{Path(a.trajectory).name}'")
    r = optimize_sigmas(sigmas, table, gamma=a.gamma, start=a.start, lam=a.lam, method=a.method, interp=a.interp)
    if a.json:
        print(json.dumps(result_json(r)))
        return
    print(f"CPE {r.cpe_before:.7g} -> {r.cpe_after:.7g} ({100 * r.improvement:+.2f} %), start sigma "
          f"{r.start_sigma_before:.6g} -> {r.start_sigma_after:.6g}, {r.method}/{r.start}, gamma {r.gamma:g}, {1000 * r.seconds:.1f} ms")
    print("sigmas: " + ", ".join(f"{s:.6g}" for s in r.sigmas))


def cmd_info(a: argparse.Namespace) -> None:
    t = load_table(a.path)
    info = dataclasses.asdict(t.info)
    if a.json:
        print(json.dumps({"kind": t.kind.value, "sigma_min": t.sigma_min, "sigma_max": t.sigma_max, "levels": len(t.sigmas),
                          "samples": int(t.count.sum()), "info": info, "sigmas": t.sigmas.tolist(), "w": t.mean_mse.tolist(),
                          "standard_error": t.standard_error.tolist()}))
        return
    print(f"{a.path}: {t.kind.label} model, {len(t.sigmas)} levels over sigma [{t.sigma_min:.5g}, {t.sigma_max:.5g}], "
          f"{int(t.count.sum())} samples")
    print("  " + ", ".join(f"{k}={v}" for k, v in info.items() if v not in ("", 0)))
    print(f"  {'sigma':>12} {'w':>12} {'rel. s.e.':>10} {'bias':>10}")
    for s, w, se, b in zip(t.sigmas, t.mean_mse, t.standard_error, t.mean_bias):
        print(f"  {s:12.5g} {w:12.5g} {se / w:10.2%} {b:10.3g}")


def profile_demo(name: str, grid: int, samples: int, batch: int, seed: int, progress=None) -> ErrorTable:
    """Error table of a bundled demo model on its training digits (unconditional)."""
    from .demo import load_demo_model
    from .demo.data import load_digits
    from .parameterization import noise_level_grid
    from .profile import profile

    model = load_demo_model(name)
    images, _ = load_digits("train")
    levels = noise_level_grid(model.sigma_min, model.sigma_max, grid, model.kind)
    info = TableInfo(model_fingerprint=model.fingerprint, source=f"demo model '{name}' on its training digits")
    return profile(lambda x, s, i: model.denoise(x, s, None), images, model.kind, levels, samples, batch, seed,
                   progress=progress, info=info)


def cmd_profile(a: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    bar = lambda done, total: print(f"\rprofiling {done}/{total}", end="", file=sys.stderr)  # noqa: E731
    table = profile_demo(a.model, a.grid, a.samples, a.batch, a.seed, bar)
    print(file=sys.stderr)
    table = dataclasses.replace(table, info=dataclasses.replace(table.info, created=now_iso()))
    save_table(table, a.out)
    print(f"wrote {a.out}: {len(table.sigmas)} levels x {a.samples} samples in {time.perf_counter() - t0:.1f} s")


def demo_search(host, base, sampler: str, seed: int, evaluations: int, table=None, variance_weight: float = 0.0,
                cache=None, progress=None):
    """(VRG+ on a demo host from `base`, whether it was cached): the one search path (`cached_search`)."""
    from .search import cached_search

    request = host.request(base, sampler, seed, evaluations, table, variance_weight)
    return cached_search(request, host.run(seed), cache, progress=progress)


def cmd_search(a: argparse.Namespace) -> None:
    from .demo import load_demo_model
    from .demo.host import DemoHost, base_scheduler, demo_schedules
    from .search import SearchCache, StepRange, cached_family

    model = load_demo_model(a.model)
    table = None if a.table is None else load_table(a.table)
    if table is not None and table.kind != model.kind:
        raise VRGError(f"the table '{Path(a.table).name}' was measured on a {table.kind.label} model, but the demo "
                       f"{a.model} model is {model.kind.label}; give that model's table, or none")
    if table is None and a.variance_weight > 0:
        raise VRGError("--variance-weight above 0 needs --table (the model's error table)")
    served = StepRange.parse(a.steps)
    if a.sigmas is not None:  # one count's base schedule: its length says the count
        if served.high != served.low:
            raise VRGError(f"--sigmas gives one step count's base schedule; with --steps {a.steps} leave it out (the "
                           "base is the model's scheduler at each count)")
        given = schedule_from_text(a.sigmas, "--sigmas")
        if not 2 <= len(given) - 1 <= MAX_STEPS:
            raise VRGError(f"--sigmas has {len(given) - 1} steps; the search takes 2 to {MAX_STEPS}")
        served = StepRange(len(given) - 1, len(given) - 1)
    host = DemoHost(model)
    cache = SearchCache(a.cache) if a.cache else None
    single = served.high == served.low
    family, hits = cached_family(
        served, a.evaluations or (DEFAULT_EVALUATIONS if single else DEFAULT_FAMILY_EVALUATIONS), as_sampler(a.sampler),
        lambda n, budget: host.request(given if a.sigmas is not None else demo_schedules(model, n)[base_scheduler(model)],
                                       a.sampler, a.seed, budget, table, a.variance_weight),
        lambda request: host.run(a.seed), cache, progress=progress_printer("searching", "evaluations"))
    results = family.anchors
    for warning in cache.warnings if cache else []:
        print(f"warning: {warning}", file=sys.stderr)
    schedules = {n: family.sigmas(n) for n in range(served.low, served.high + 1)}
    if a.save is not None:
        made_by = (f"VRG+ with the CLI: demo {a.model} model, {a.sampler}, {served} steps, seed {a.seed}, "
                   f"{family.evaluations} evaluations")
        save_schedule(ScheduleFile(model.fingerprint, model.kind, a.sampler, 1.0, schedules, made_by), a.save)
    if a.json:  # one count: its search's record; a range: each anchor's, and the schedule of every count
        print(json.dumps({**results[served.low].to_record(), "cached": bool(hits)} if single else
                         {"steps": str(served), "cached": hits, "searches": {n: r.to_record() for n, r in results.items()},
                          "schedules": {n: s.tolist() for n, s in schedules.items()}}))
        return
    for n, result in results.items():
        cost = "cached" if hits == len(results) else (f"{result.evaluations} evaluations, {result.model_seconds:.1f} s "
                                                      f"model, {result.search_seconds:.2f} s search")
        print(f"{a.sampler}, {n} steps: {result.verdict.sentence()} ({cost}; kept {result.chosen})")
    for n, sigmas in schedules.items():
        print(f"sigmas for {n} steps{'' if n in results else ' (interpolated)'}: " + ", ".join(f"{s:.6g}" for s in sigmas))


def compared_names(text: str, offered: Sequence[str]) -> list[str]:
    """The schedule names of --schedules (comma-separated, each once, each one of `offered`)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in offered]
    if unknown:
        raise VRGError(f"--schedules: {', '.join(map(repr, unknown))} unknown; use names from: {', '.join(offered)}")
    if len(set(names)) != len(names):
        raise VRGError(f"--schedules names a schedule twice: {text!r}")
    return names


def cmd_compare(a: argparse.Namespace) -> None:
    import torch

    from .compare import compare_schedules
    from .demo import load_demo_model
    from .demo.host import BATCH, DemoHost, base_scheduler, demo_schedules, ksampler_start
    from .search import SearchCache

    model = load_demo_model(a.model)
    offered = demo_schedules(model, a.steps)
    names = compared_names(a.schedules, [VRG_PLUS, *offered]) if a.schedules else [VRG_PLUS, *offered]
    host = DemoHost(model)
    schedules = {name: offered.get(name) for name in names}
    if VRG_PLUS in names:
        if a.seed == a.search_seed:
            raise VRGError(f"--seed {a.seed} is the search's seed: its noises are the ones VRG+ was fitted to; "
                           "compare on another --seed")
        base = offered[base_scheduler(model)]
        plus, cached = demo_search(host, base, a.sampler, a.search_seed, a.evaluations,
                                   cache=SearchCache(a.cache) if a.cache else None,
                                   progress=progress_printer("searching", "evaluations"))
        schedules[VRG_PLUS] = plus.sigmas
        print(f"VRG+ ({'cached' if cached else f'{plus.evaluations} evaluations'}, seed {a.search_seed}): "
              f"{plus.verdict.sentence()}; kept {plus.chosen}", file=sys.stderr)
    with torch.inference_mode():
        result = compare_schedules(host.denoise, ksampler_start(model, a.seed), schedules, a.sampler, model.kind,
                                   model.sigma_min, a.noises, batch_size=BATCH,
                                   progress=progress_printer("comparing", "evaluations"))
    if a.json:
        rows = {label: {"sigmas": schedules[label].tolist(), **{k: v for k, v in dataclasses.asdict(m).items()
                                                                 if k != "distance"}}
                for label, m in result.measured.items()}
        print(json.dumps({"model": a.model, "sampler": a.sampler, "noises": a.noises, "seed": a.seed,
                          "best": result.best, "evaluations": result.evaluations, "schedules": rows}))
        return
    print(f"demo {a.model} model, the noises of seed {a.seed}")
    print("\n".join(result.lines()))


def progress_printer(verb: str, unit: str):
    """A progress callback printing `verb done/total unit` to stderr: in place on a terminal, every 10 % otherwise."""
    last = [-1]

    def show(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{verb} {done}/{total} {unit}", end="" if done < total else "\n", file=sys.stderr)
        elif done * 10 // max(total, 1) > last[0]:
            last[0] = done * 10 // max(total, 1)
            print(f"{verb} {done}/{total} {unit}", file=sys.stderr)

    return show


def cmd_demo(a: argparse.Namespace) -> None:
    import torch

    from .demo import load_demo_model
    from .demo.host import DemoHost, demo_schedules, ksampler_start
    from .demo.metric import fd_to_heldout
    from .search import sample

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = load_demo_model("eps")
    host = DemoHost(model)  # class-conditional: digit = sample number mod 10
    candidates = demo_schedules(model, a.steps)
    base = candidates["karras"]
    plus, _ = demo_search(host, base, "euler", a.seed, DEFAULT_EVALUATIONS)
    table = profile_demo("eps", a.grid, a.samples, 256, a.seed)
    vrg = optimize_sigmas(base, table, start="fixed")
    x = ksampler_start(model, a.seed + 1)(a.count, model.sigma_max)  # every schedule compared starts at σ_max
    offered = {"VRG+": plus.sigmas, **candidates, "VRG": vrg.sigmas}
    rows = {k: v for k, v in offered.items() if np.isclose(v[0], model.sigma_max, rtol=1e-6, atol=0.0)}
    not_compared = [k for k in offered if k not in rows]  # a table starting elsewhere would need another start
    fine = np.exp(np.linspace(np.log(model.sigma_max), np.log(model.sigma_min), 200))
    with torch.inference_mode():
        converged = sample(host.denoise, x, np.append(fine, 0.0), "dpmpp_2m")
        scores = {}
        for label, sigmas in rows.items():
            out = sample(host.denoise, x, sigmas, "euler")
            scores[label] = {"distance": float((out - converged).pow(2).mean()), "fd": fd_to_heldout(out.float().clamp(-1, 1))}
    best = min((k for k in rows if k != "VRG+"), key=lambda k: scores[k]["distance"])
    print(f"demo EPS model, Euler, {a.steps} steps, {a.count} class-conditional samples from the same noise")
    print(f"  {'schedule':<12} {'distance to converged':>22} {'FD to digits':>13}")
    for label in rows:
        print(f"  {label:<12} {scores[label]['distance']:>22.5f} {scores[label]['fd']:>13.2f}")
    if not_compared:
        print(f"  not compared (they do not start at the model's sigma_max {model.sigma_max:.6g}, where these samples "
              f"start): {', '.join(not_compared)}")
    gain = 100 * (1 - scores["VRG+"]["distance"] / scores[best]["distance"])
    if np.array_equal(rows[best], plus.sigmas):  # the search kept this fixed schedule: VRG+ is it
        print(f"  on these samples (noises the search never saw) VRG+ is the best fixed schedule ({best}) itself")
    else:
        print(f"  on these samples (noises the search never saw) VRG+ is {gain:.0f} % closer to the converged samples "
              f"than the best fixed schedule ({best})")
    print(f"  the search said: {plus.verdict.sentence()}; it kept {plus.chosen}, with {plus.evaluations} model "
          "evaluations and no error table (VRG needs one: profiled here)")
    print(f"  took {time.perf_counter() - t0:.1f} s")
    if a.json:
        print(json.dumps({"steps": a.steps, "sampler": "euler", "samples": a.count, "scores": scores,
                          "sigmas": {k: np.asarray(v).tolist() for k, v in rows.items()}, "not_compared": not_compared,
                          "vrg_plus_evaluations": plus.evaluations, "seconds": time.perf_counter() - t0}))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vrg_core",
                description="Variance-Reduction Guidance: optimise sampling schedules from a model's measured error.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    shown = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}  # every option's default in --help

    o = sub.add_parser("optimize", help="optimise a schedule with an error table", **shown)
    o.add_argument("--table", required=True, help="a VRG .safetensors table or an official MSE-vs-alpha_bar .txt/.tsv")
    o.add_argument("--sigmas", help="comma-separated descending sigmas, e.g. '14.6,5.1,1.2,0.03,0'")
    o.add_argument("--trajectory", help="an official alpha_bar trajectory file")
    o.add_argument("--kind", help="model kind the sigmas belong to, checked against the table: eps, v_prediction, "
                   "edm, or flow (also called const)")
    o.add_argument("--gamma", default="auto", help="learning portion, or 'auto' (0.05 up to 10 steps, else 0.01)")
    o.add_argument("--start", default="fixed", choices=START_MODES,
                   help="fixed: keep the first sigma exactly; paper: the official soft penalty lets it move")
    o.add_argument("--lam", type=float, default=100.0, help="start penalty for --start paper")
    o.add_argument("--method", default="exact", choices=METHODS,
                   help="exact: the deterministic solver (milliseconds); paper: the official SGD, for reproduction")
    o.add_argument("--interp", default="loglog", choices=INTERPOLATIONS,
                   help="how the error table is read between its levels: loglog (log w over log sigma) or the "
                        "official one (linear in alpha_bar)")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.set_defaults(run=cmd_optimize)

    se = sub.add_parser("search", help="VRG+: search the schedule closest to a demo model's converged samples, "
                                       "against its schedulers and the published tables for its kind (AYS and GITS "
                                       "for eps, OSS for flow)", **shown)
    se.add_argument("--model", default="eps", choices=("eps", "flow"), help="the bundled demo model")
    se.add_argument("--steps", default="10", help="steps (when --sigmas is not given), or a range such as 4-30: "
                    "searched at a few counts of it, interpolated between")
    se.add_argument("--sampler", default="euler", choices=SEARCH_SAMPLERS, help="the sampler to search for")
    se.add_argument("--sigmas", help="the base schedule (karras for eps, simple for flow when not given); its start is held")
    se.add_argument("--table", help="optional: the model's error table (adds VRG alone as a candidate)")
    se.add_argument("--evaluations", type=at_least(1), help=f"model evaluations to spend in all (default "
                    f"{DEFAULT_EVALUATIONS} for one step count, {DEFAULT_FAMILY_EVALUATIONS} for a range)")
    se.add_argument("--variance-weight", type=float, default=DEFAULT_VARIANCE_WEIGHT,
                    help="weight of VRG's prediction-error term (needs --table); 0 aims purely at the converged samples")
    se.add_argument("--seed", type=int, default=0, help="seed of the teacher trajectories' noise")
    se.add_argument("--cache", type=Path, metavar="FOLDER",
                    help="reuse / store searches in FOLDER/vrg_search_cache.json")
    se.add_argument("--save", type=out_path(".json", "demo_eps_euler.json"), metavar="FILE.json",
                    help="also write every step count's schedule to FILE.json, a VRG+ schedule file (ComfyUI's VRG "
                         "Load Searched Schedule and the webui read it, on the model it was searched on)")
    se.add_argument("--json", action="store_true", help="print one JSON object")
    se.set_defaults(run=cmd_search)

    c = sub.add_parser("compare", help="sample schedules of a demo model from the same noises and measure how close "
                                       "each comes to its converged samples", **shown)
    c.add_argument("--model", default="eps", choices=("eps", "flow"), help="the bundled demo model")
    c.add_argument("--sampler", default="euler", choices=SEARCH_SAMPLERS, help="the sampler every schedule runs with")
    c.add_argument("--steps", type=at_least(2), default=6, help="steps of the demo schedules and of VRG+")
    c.add_argument("--schedules", default="",
                   help=f"comma-separated names: karras, exponential, simple, the published tables for the model "
                        f"(EPS: ays_sd1, ays_sdxl, gits; flow: oss_flux, oss_wan), {VRG_PLUS} (searched first); "
                        f"default: {VRG_PLUS} and all the others")
    c.add_argument("--noises", type=at_least(2), default=16, help="noises every schedule is sampled from")
    c.add_argument("--seed", type=int, default=1, help="seed of the compared noises (not the search's)")
    c.add_argument("--search-seed", type=int, default=0, help=f"seed of the {VRG_PLUS} search")
    c.add_argument("--evaluations", type=at_least(1), default=DEFAULT_EVALUATIONS,
                   help=f"model evaluations the {VRG_PLUS} search spends")
    c.add_argument("--cache", type=Path, metavar="FOLDER", help="reuse / store the search in FOLDER/vrg_search_cache.json")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(run=cmd_compare)

    i = sub.add_parser("info", help="a table's metadata and error curve", **shown)
    i.add_argument("path", help="a VRG .safetensors table or an official text table")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(run=cmd_info)

    pr = sub.add_parser("profile", help="profile a bundled demo model into a table file", **shown)
    pr.add_argument("--model", default="eps", choices=("eps", "flow"), help="the bundled demo model")
    pr.add_argument("--out", required=True, type=out_path(".safetensors", "my_model.safetensors"),
                    help="the table file to write (.safetensors)")
    pr.add_argument("--grid", type=at_least(2), default=32, help="noise levels")
    pr.add_argument("--samples", type=at_least(1), default=64, help="samples per level")
    pr.add_argument("--batch", type=at_least(1), default=256, help="samples per model call")
    pr.add_argument("--seed", type=int, default=0, help="seed of the noise; same seed, same table")
    pr.set_defaults(run=cmd_profile)

    d = sub.add_parser("demo", help="search VRG+ on the demo model, sample it beside every demo schedule (its "
                                    "schedulers and the published AYS and GITS tables) and VRG, compare the distance "
                                    "to converged samples and FD", **shown)
    d.add_argument("--steps", type=at_least(2), default=10, help="sampling steps (Euler)")
    d.add_argument("--grid", type=at_least(2), default=32, help="noise levels of VRG's error table")
    d.add_argument("--samples", type=at_least(1), default=64, help="samples per level of VRG's error table")
    d.add_argument("--count", type=at_least(2), default=2000, help="samples per schedule for the metric")
    d.add_argument("--seed", type=int, default=0, help="seed of the search and of the compared samples' noise")
    d.add_argument("--json", action="store_true", help="end with one JSON line")
    d.set_defaults(run=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except VRGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
