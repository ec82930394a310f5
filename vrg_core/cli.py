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


from .errors import VRGError
from .error_table import ErrorTable, TableInfo, now_iso
from .objective import schedule_from_text
from .optimize import METHODS, START_MODES, OptimizeResult, optimize_sigmas
from .error_table import INTERPOLATIONS
from .parameterization import ModelKind
from .search import DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, SAMPLERS as SEARCH_SAMPLERS
from .table_io import load_table, official_trajectory_from_text, read_limited, save_table

MAX_TEXT_BYTES = 1024 * 1024


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


def table_out_path(text: str) -> Path:
    """An argparse type: where a new table goes — a .safetensors name in a folder that exists or can be made."""
    path = Path(text)
    if path.suffix.lower() != ".safetensors":
        raise argparse.ArgumentTypeError(f"{text!r} must end in .safetensors, e.g. 'my_model.safetensors'")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name ending in .safetensors")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"'{existing}' is a file, so {text!r} cannot be created; pick another folder")
    return path


def _table_for(path: str, kind: str | None) -> ErrorTable:
    table = load_table(path)
    if kind is not None and ModelKind.parse(kind) != table.kind:
        raise VRGError(f"--kind {kind} does not match the table '{Path(path).name}', which was measured on a {table.kind.value} model")
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
    print(f"{a.path}: {t.kind.value} model, {len(t.sigmas)} levels over sigma [{t.sigma_min:.5g}, {t.sigma_max:.5g}], "
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


def cmd_search(a: argparse.Namespace) -> None:
    import torch

    from .bundle import find_searched, load_bundled_table, store_searched
    from .demo import load_demo_model, make_context
    from .demo.sampling import karras_sigmas, simple_sigmas, start_noise
    from .search import cache_settings, search_schedule

    model = load_demo_model(a.model)
    table = load_bundled_table(f"demo_{a.model}") if a.table is None else _table_for(a.table, model.kind.value)
    if a.sigmas is not None:
        base = schedule_from_text(a.sigmas, "--sigmas")
    else:
        base = (simple_sigmas(model, a.steps) if model.kind.is_flow else karras_sigmas(model, a.steps)).double().numpy()
    settings = cache_settings(table, base, model.fingerprint, a.evaluations, a.variance_weight, a.seed, 1.0)
    folder, name = (Path(a.table).parent, Path(a.table).name) if a.table else (None, None)
    result = find_searched(folder, name, a.sampler, len(base) - 1, settings) if a.cache and folder else None
    cached = result is not None
    if result is None:
        noise = start_noise(model, float(base[0]), a.seed)
        bar = lambda done, total: print(f"\rsearching {done}/{total} evaluations", end="", file=sys.stderr)  # noqa: E731
        with torch.inference_mode():
            result = search_schedule(lambda x, s, i: model.denoise(x, s, make_context(i % 10)), noise, base, table,
                                     a.sampler, a.evaluations, variance_weight=a.variance_weight, progress=bar)
        print(file=sys.stderr)
        if a.cache and folder:
            store_searched(folder, name, name, result, settings)
    if a.json:
        print(json.dumps({**result.to_record(), "cached": cached}))
        return
    o = result.objectives
    cost = "cached" if cached else (f"{result.evaluations} evaluations, {result.model_seconds:.1f} s model, "
                                    f"{result.search_seconds:.2f} s search")
    print(f"{a.sampler}, {result.steps} steps: chose {result.chosen}; total error base {o['base'].total:.4g}, "
          f"VRG {o['vrg'].total:.4g}, chosen {o[result.chosen].total:.4g} ({cost})")
    print("sigmas: " + ", ".join(f"{s:.6g}" for s in result.sigmas))


def cmd_demo(a: argparse.Namespace) -> None:
    import torch

    from .demo import load_demo_model
    from .demo.metric import fd_to_heldout
    from .demo.sampling import karras_sigmas, sample_euler, start_noise
    from .search import search_schedule

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = load_demo_model("eps")
    table = profile_demo("eps", a.grid, a.samples, 256, a.seed)
    base = karras_sigmas(model, a.steps)
    r = optimize_sigmas(base.numpy(), table, start="fixed")
    with torch.inference_mode():
        plus = search_schedule(lambda x, s, i: model.denoise(x, s, None), start_noise(model, float(base[0]), a.seed + 2),
                               base.double().numpy(), table, "euler")
    noise = torch.randn((a.count, 1, 16, 16), generator=torch.Generator().manual_seed(a.seed + 1))
    metrics = {}
    for label, sig in (("base", base), ("vrg", r.sigmas), ("vrg_plus", plus.sigmas)):
        metrics[label] = fd_to_heldout(sample_euler(model, noise, torch.as_tensor(sig).float()).clamp(-1, 1))
    out = {"steps": a.steps, "sampler": "euler", "scheduler": "karras", "model": "demo eps (SD1.5 schedule)",
           "samples": a.count, "metric": "FD to held-out digits (classifier features)",
           "base_metric": metrics["base"], "vrg_metric": metrics["vrg"], "vrg_plus_metric": metrics["vrg_plus"],
           "cpe_before": r.cpe_before, "cpe_after": r.cpe_after, "base_sigmas": base.tolist(),
           "vrg_sigmas": r.sigmas.tolist(), "vrg_plus_sigmas": plus.sigmas.tolist(),
           "vrg_plus_evaluations": plus.evaluations, "seconds": time.perf_counter() - t0}
    print(f"demo EPS model, euler, karras, {a.steps} steps, {a.count} samples from the same noise")
    print(f"  CPE      base {r.cpe_before:.5g}   VRG {r.cpe_after:.5g}")
    print(f"  FD       base {metrics['base']:.4g}   VRG {metrics['vrg']:.4g}   VRG+ {metrics['vrg_plus']:.4g}   "
          "(lower is better)")
    print(f"  VRG+ searched the schedule on the model with {plus.evaluations} evaluations (chose {plus.chosen})")
    print(f"  took {out['seconds']:.1f} s")
    if a.json:
        print(json.dumps(out))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vrg_core",
                description="Variance-Reduction Guidance: optimise sampling schedules from a model's measured error.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    o = sub.add_parser("optimize", help="optimise a schedule with an error table")
    o.add_argument("--table", required=True, help="a VRG .safetensors table or an official MSE-vs-alpha_bar .txt/.tsv")
    o.add_argument("--sigmas", help="comma-separated descending sigmas, e.g. '14.6,5.1,1.2,0.03,0'")
    o.add_argument("--trajectory", help="an official alpha_bar trajectory file")
    o.add_argument("--kind", help="model kind the sigmas belong to (checked against the table)")
    o.add_argument("--gamma", default="auto", help="learning portion, or 'auto' (0.05 up to 10 steps, else 0.01)")
    o.add_argument("--start", default="fixed", choices=START_MODES)
    o.add_argument("--lam", type=float, default=100.0, help="start penalty for --start paper")
    o.add_argument("--method", default="exact", choices=METHODS)
    o.add_argument("--interp", default="loglog", choices=INTERPOLATIONS)
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.set_defaults(run=cmd_optimize)

    se = sub.add_parser("search", help="VRG+: search a schedule on a bundled demo model for its total error")
    se.add_argument("--model", default="eps", choices=("eps", "flow"))
    se.add_argument("--steps", type=at_least(2), default=10, help="steps (when --sigmas is not given)")
    se.add_argument("--sampler", default="euler", choices=SEARCH_SAMPLERS)
    se.add_argument("--sigmas", help="the base schedule (default: karras for eps, simple for flow); its ends are held")
    se.add_argument("--table", help="the model's error table (default: the bundled demo table)")
    se.add_argument("--evaluations", type=at_least(1), default=DEFAULT_EVALUATIONS, help="model evaluations to spend")
    se.add_argument("--variance-weight", type=float, default=DEFAULT_VARIANCE_WEIGHT,
                    help="weight of VRG's prediction-error term against the discretisation error")
    se.add_argument("--seed", type=int, default=0, help="seed of the teacher trajectories' noise")
    se.add_argument("--cache", action="store_true",
                    help="reuse / store the result in index.json beside --table (the bundle's format)")
    se.add_argument("--json", action="store_true", help="print one JSON object")
    se.set_defaults(run=cmd_search)

    i = sub.add_parser("info", help="a table's metadata and error curve")
    i.add_argument("path")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=cmd_info)

    pr = sub.add_parser("profile", help="profile a bundled demo model into a table file")
    pr.add_argument("--model", default="eps", choices=("eps", "flow"))
    pr.add_argument("--out", required=True, type=table_out_path, help="the table file to write (.safetensors)")
    pr.add_argument("--grid", type=at_least(2), default=32, help="noise levels")
    pr.add_argument("--samples", type=at_least(1), default=64, help="samples per level")
    pr.add_argument("--batch", type=at_least(1), default=256)
    pr.add_argument("--seed", type=int, default=0)
    pr.set_defaults(run=cmd_profile)

    d = sub.add_parser("demo", help="profile the demo model, optimise 10 steps, sample base vs VRG, compare FD")
    d.add_argument("--steps", type=at_least(2), default=10)
    d.add_argument("--grid", type=at_least(2), default=32)
    d.add_argument("--samples", type=at_least(1), default=64)
    d.add_argument("--count", type=at_least(2), default=2000, help="samples per schedule for the metric")
    d.add_argument("--seed", type=int, default=0)
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
