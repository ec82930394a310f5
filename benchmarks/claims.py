"""The paper's assumptions and claims, measured on our models.

* Error moments per level: VRG models the per-step prediction error as zero-mean noise whose
  variance w(σ) is all that matters. Per level: mean, std, skewness and excess kurtosis of the
  per-dimension direction error d̂ − d*, and the share beyond 3 std (0.27 % if Gaussian).
* CPE vs metric: Spearman rank correlation across schedules at equal sampler and steps.
* Training-set vs held-out error tables: how different they are and whether the schedule changes.
* GMM trajectory study (see `benchmarks.gmm`): measured accumulated prediction error vs CPE.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch

from vrg_core.objective import cumulative_error
from vrg_core.optimize import optimize_sigmas
from vrg_core.parameterization import noise_level_grid

from .backend import Unavailable
from .subjects import error_samples


def moments(subject, levels: int, per_level: int) -> list[dict]:
    model_sigmas = subject.extra["model"].sigmas if "model" in subject.extra else None
    lo, hi = (float(model_sigmas[0]), float(model_sigmas[-1])) if model_sigmas is not None else (0.0292, 14.6146)
    sigmas = noise_level_grid(lo, hi, levels, subject.sampling.kind)
    out = []
    for s, err in error_samples(subject, sigmas, per_level).items():
        e = err.reshape(-1).numpy()
        z = (e - e.mean()) / e.std()
        per_sample_mean = err.mean(1).numpy()
        out.append({"sigma": s, "mean": float(e.mean()), "std": float(e.std()), "skew": float(scipy.stats.skew(e)),
                    "kurtosis": float(scipy.stats.kurtosis(e)), "tail3": float(np.mean(np.abs(z) > 3)),
                    "mean_se": float(per_sample_mean.std() / np.sqrt(len(per_sample_mean)))})
    return out


def spearman(x, y) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(x, y).statistic)


def correlations(subject_result: dict) -> dict:
    groups: dict = {}
    for r in subject_result["rows"]:
        groups.setdefault((r["sampler"], r["steps"]), []).append((r["cpe"], float(np.mean(r["values"]))))
    within = {f"{s}/{n}": spearman(*zip(*v)) for (s, n), v in sorted(groups.items())}
    pooled = [(r["cpe"], float(np.mean(r["values"]))) for r in subject_result["rows"]]
    return {"within": within, "pooled": spearman(*zip(*pooled)) if pooled else float("nan"),
            "median_within": float(np.nanmedian(list(within.values()))) if within else float("nan")}


def train_vs_heldout(backend, subject, cfg) -> dict:
    held = subject.table("heldout", cfg.grid, cfg.per_level)
    train = subject.table("train", cfg.grid, cfg.per_level)
    ratio = train.mean_mse / held.mean_mse
    rel_se = np.sqrt((train.standard_error / train.mean_mse) ** 2 + (held.standard_error / held.mean_mse) ** 2)
    sched = "simple" if subject.sampling.kind.is_flow else "karras"
    out = {"sigmas": held.sigmas.tolist(), "w_train": train.mean_mse.tolist(), "w_heldout": held.mean_mse.tolist(),
           "ratio": ratio.tolist(), "ratio_rel_se": rel_se.tolist(), "schedules": []}
    for steps in cfg.steps:
        try:
            base = backend.sigmas(subject.sampling, sched, steps)
        except Unavailable:
            continue
        r_held = optimize_sigmas(base, held, start="fixed")
        r_train = optimize_sigmas(base, train, start="fixed")
        out["schedules"].append({
            "schedule": f"{sched}/{steps}", "cpe_base_heldout": r_held.cpe_before, "cpe_base_train": r_train.cpe_before,
            "cpe_vrg_heldout": r_held.cpe_after,
            "cpe_of_train_vrg_under_heldout": cumulative_error(r_train.sigmas, held).total,
            "max_rel_sigma_diff": float(np.max(np.abs(r_train.sigmas[:-1] - r_held.sigmas[:-1]) / r_held.sigmas[:-1])),
        })
    return out


def gmm_trajectories(backend, subject, cfg) -> dict:
    from .gmm import model_only_table, trajectory_study

    tb = subject.extra["testbed"]
    table = subject.table("heldout", cfg.grid, cfg.per_level)
    mtable = model_only_table(tb, cfg.grid, cfg.per_level)
    studies = {}
    for sampler in ("euler", "dpmpp_2m"):
        schedules = {}
        for sched in cfg.eps_schedulers:
            for steps in cfg.steps:
                try:
                    base = backend.sigmas(subject.sampling, sched, steps)
                except Unavailable:
                    continue
                schedules[f"{sched}/{steps}"] = base
                for start in ("fixed", "paper"):
                    r = optimize_sigmas(base, table, start=start)
                    schedules[f"{sched}/{steps} vrg-{start}"] = torch.tensor(r.sigmas, dtype=torch.float32)
        studies[sampler] = trajectory_study(backend, tb, schedules, table, mtable, sampler=sampler,
                                            n=min(cfg.gmm_samples, 4000), reference_steps=cfg.reference_steps * 5)
    summary = {}
    for sampler, rows in studies.items():
        pred = np.array([r["pred_err"] for r in rows])
        summary[sampler] = {
            "spearman_pred_vs_cpe_model": spearman([r["cpe_model"] for r in rows], pred),
            "spearman_pred_vs_cpe_table": spearman([r["cpe_table"] for r in rows], pred),
            "spearman_total_vs_cpe_table": spearman([r["cpe_table"] for r in rows], [r["total_err"] for r in rows]),
            "median_pred_over_cpe_model": float(np.median(pred / [r["cpe_model"] for r in rows])),
            "median_pred_over_cpe_table": float(np.median(pred / [r["cpe_table"] for r in rows])),
            "median_disc_share": float(np.median([r["disc_err"] / (r["disc_err"] + r["pred_err"]) for r in rows])),
        }
    return {"w_table": table.mean_mse.tolist(), "w_model": mtable.mean_mse.tolist(), "sigmas": table.sigmas.tolist(),
            "studies": studies, "summary": summary}


def run_claims(backend, subjects, cfg, results) -> dict:
    out = {}
    levels, per_level = (6, 64) if cfg.quick else (12, 256)
    by_name = {r["name"]: r for r in results["subjects"]}
    for subject in subjects:
        entry = {"moments": moments(subject, levels, per_level),
                 "correlation": correlations(by_name[subject.name]),
                 "train_vs_heldout": train_vs_heldout(backend, subject, cfg)}
        if subject.name == "gmm":
            entry["trajectories"] = gmm_trajectories(backend, subject, cfg)
        out[subject.name] = entry
    return out
