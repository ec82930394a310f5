"""The benchmark's own machinery: GMM testbed (exact denoiser, exact metrics), backends, report."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from benchmarks.gmm import GaussianMixture, fd_exact, gmm_table, mmd2_exact

HAVE_COMFY = bool(os.environ.get("COMFYUI_PATH"))
HAVE_KDIFF = importlib.util.find_spec("k_diffusion") is not None
NEEDS_BACKEND = pytest.mark.skipif(not (HAVE_COMFY or HAVE_KDIFF),
                                   reason="needs COMFYUI_PATH or the k-diffusion package (benchmark-only extra)")


@pytest.fixture(scope="module")
def gmm() -> GaussianMixture:
    return GaussianMixture.random(dim=3, components=4, seed=3)


def test_exact_denoiser_of_one_gaussian_is_the_linear_posterior_mean():
    g = GaussianMixture.random(dim=3, components=1, seed=1)
    x = torch.randn(5, 3, dtype=torch.float64)
    sigma = 0.7
    cov = g.covs[0]
    want = g.means[0] + (cov @ torch.linalg.solve(cov + sigma**2 * torch.eye(3, dtype=torch.float64), (x - g.means[0]).T)).T
    assert torch.allclose(g.denoise(x, sigma), want, atol=1e-10)


def test_exact_denoiser_is_the_posterior_mean_by_monte_carlo(gmm):
    """E[x0 | x] by importance weighting many prior samples agrees with the closed form."""
    gen = torch.Generator().manual_seed(0)
    x0 = gmm.sample(400_000, gen)
    sigma = 0.5
    x = gmm.sample(3, gen) + sigma * torch.randn(3, 3, generator=gen, dtype=torch.float64)
    logw = -((x[:, None, :] - x0[None]) ** 2).sum(-1) / (2 * sigma**2)
    w = torch.softmax(logw, dim=1)
    mc = w @ x0
    assert torch.allclose(gmm.denoise(x, sigma), mc, atol=0.02)


def test_exact_denoiser_beats_any_other_in_the_profiled_error(gmm):
    """Bayes optimality: its error table is below a shrunk version of itself at every level."""
    x0 = gmm.sample(512, torch.Generator().manual_seed(1)).float()
    exact = gmm_table(lambda x, s: gmm.denoise(x, s), x0, grid=8, samples=256)
    worse = gmm_table(lambda x, s: 0.9 * gmm.denoise(x, s), x0, grid=8, samples=256)
    assert np.all(exact.mean_mse < worse.mean_mse)


def test_exact_metrics_are_near_zero_for_true_samples_and_not_for_wrong_ones(gmm):
    gen = torch.Generator().manual_seed(2)
    true = gmm.sample(3000, gen)
    wrong = true + 0.3
    assert abs(mmd2_exact(true, gmm)) < 2e-3
    assert mmd2_exact(wrong, gmm) > 20 * abs(mmd2_exact(true, gmm))
    assert fd_exact(true, gmm) < 0.02
    assert fd_exact(wrong, gmm) > 0.2


def test_paired_delta_and_marks():
    from benchmarks.report import clear, paired_delta

    m, s = paired_delta([9.0, 18.0, 27.0], [10.0, 20.0, 30.0])
    assert m == pytest.approx(-10.0) and s == pytest.approx(0.0, abs=1e-12)
    assert clear(-10.0, 1.0) == "▼" and clear(10.0, 1.0) == "▲" and clear(-1.0, 1.0) == ""


def tiny_results() -> dict:
    """A hand-made quality.json with one subject and one cell."""
    def row(sampler, variant, vals, cpe):
        return {"sampler": sampler, "scheduler": "karras", "steps": 5, "variant": variant, "gamma": 0.05,
                "values": vals, "cpe": cpe, "sigma0": 14.6 if variant != "vrg_paper" else 9.0, "sigmas": [14.6, 1.0, 0.0]}

    subject = {
        "name": "eps", "title": "demo EPS", "metric": "FD", "kind": "eps", "samples_per_seed": 10,
        "rows": [row("euler", "base", [10.0, 11.0], 2.0), row("euler", "vrg_fixed", [9.0, 10.0], 1.8),
                 row("euler", "vrg_paper", [12.0, 13.0], 1.0)],
        "sweep": [{"sampler": "euler", "scheduler": "karras", "steps": 10, "gamma": g, "start": "fixed",
                   "values": [10.0 - g, 11.0 - g], "base_values": [10.0, 11.0], "cpe": 1.0, "cpe_base": 1.1, "sigma0": 14.6}
                  for g in (0.0, 0.05)],
        "reference": {"sampler": "dpmpp_2m", "scheduler": "karras", "steps": 100, "values": [5.0, 5.5]},
        "floor": [1.0, 1.2], "unavailable": [], "evals": 1000, "sample_seconds": 1.0, "seconds": 2.0,
    }
    results = {"config": {"quick": True, "seeds": [0, 1], "grid": 8, "per_level": 8, "gammas": [0.0, 0.05]},
               "backend": "test", "python": "3", "torch": "2", "command": "test", "subjects": [subject],
               "seconds": 3.0, "claims": {}}
    return results


def test_report_writes_markdown_and_plots(tmp_path):
    from benchmarks.report import write_report

    write_report(tiny_results(), tmp_path)
    text = (tmp_path / "quality.md").read_text()
    assert "| Euler | 5 | Karras | 10.5 ± 0.71 |" in text
    assert "1 / 0 / 1" in text  # VRG fixed clearly better in the one cell
    assert (tmp_path / "quality_delta.png").stat().st_size > 1000


@NEEDS_BACKEND
def test_backend_euler_with_exact_denoiser_samples_the_mixture(gmm):
    from benchmarks.backend import SD15, load_backend

    backend = load_backend()
    sigmas = backend.sigmas(SD15, "karras", 60)
    noise = torch.randn(3000, 3, generator=torch.Generator().manual_seed(4))
    out = backend.sample("euler", lambda x, s: gmm.denoise(x, s), noise, sigmas, SD15, seed=0)
    assert abs(mmd2_exact(out, gmm)) < 5e-3
    wrong = backend.sample("euler", lambda x, s: gmm.denoise(x, s), noise, sigmas[::12].contiguous(), SD15, seed=0)
    assert mmd2_exact(wrong, gmm) > mmd2_exact(out, gmm)


@NEEDS_BACKEND
def test_backend_ancestral_sampler_is_paired_by_seed(gmm):
    from benchmarks.backend import SD15, load_backend

    backend = load_backend()
    sigmas = backend.sigmas(SD15, "karras", 8)
    noise = torch.randn(64, 3, generator=torch.Generator().manual_seed(5))
    run = lambda seed: backend.sample("euler_ancestral", lambda x, s: gmm.denoise(x, s), noise, sigmas, SD15, seed)  # noqa: E731
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.skipif(not (HAVE_COMFY and HAVE_KDIFF), reason="needs both COMFYUI_PATH and the k-diffusion package")
def test_comfy_and_k_diffusion_schedules_agree():
    from benchmarks.backend import SD15, ComfyBackend, KDiffusionBackend

    comfy, kd = ComfyBackend(os.environ["COMFYUI_PATH"]), KDiffusionBackend()
    for sched in ("karras", "exponential", "normal"):
        for steps in (5, 10, 20):
            assert torch.allclose(comfy.sigmas(SD15, sched, steps), kd.sigmas(SD15, sched, steps), rtol=1e-4), (sched, steps)


def test_vrg_plus_report_states_the_targets():
    from benchmarks.vrg_plus import report

    def row(distance, fd):
        return [{"distance": distance, "fd": fd, "spread": 0.9, "sigmas": [1.0, 0.5, 0.0]}] * 2

    search = {"seed": 0, "chosen": "refined1:dp@0", "held_out_best": "ays_sd1", "sigmas": [1.0, 0.5, 0.0],
              "evaluations": 1900, "samples": 20, "model_seconds": 1.0, "search_seconds": 0.5}
    cell = {"sampler": "euler", "steps": 5, "searches": [search, dict(search, held_out_best="refined1:dp@0")],
            "rows": {"ays_sd1": row(0.010, 12.0), "base": row(0.020, 20.0), "VRG+": row(0.008, 13.0)},
            "oracle": {"from": "VRG+", "distance": 0.0078, "sigmas": [1.0, 0.4, 0.0]}}
    text = report({"command": "python -m benchmarks.vrg_plus", "backend": "test", "date": "today", "seconds": 60,
                   "seeds": [0, 1], "samples": 384, "evaluations": 2000,
                   "subjects": [{"name": "eps", "title": "demo EPS", "cells": [cell]}]})
    assert "| **VRG+** | 0.008 ± 0 | 13 ± 0 | 0.9 ± 0 |" in text
    assert "vs best other schedule ays_sd1 0.01: -20.0 % (closest of all)" in text
    assert "held-out best of its measured schedules in 1/2 searches (refined1:dp@0 vs ays_sd1)" in text
    assert "VRG+ seed 0 0.008 (+2.6 % above)" in text


def test_selection_noise_counts_draws_that_rank_two_schedules_the_other_way_round():
    from benchmarks.selection import misranked

    assert misranked(np.full(50, -1.0), 5) == 0.0  # every noise agrees
    mixed = np.r_[np.full(60, -1.0), np.full(40, 1.0)]  # mean −0.2: the first is better on average
    few, many = misranked(mixed, 3), misranked(mixed, 300)
    assert 0.25 < few < 0.45 and many < 0.01  # 3 noises: P(at least 2 of 3 are +1) = 0.352


def test_fixed_choice_regret_is_the_picks_population_distance_over_the_best():
    from benchmarks.fixed_choice import regrets

    rng = np.random.default_rng(0)
    population = np.array([1.0, 2.0])
    clear = np.stack([np.full(30, 1.0), np.full(30, 2.0)])  # every noise ranks the first first
    assert all(np.all(v == 1.0) for v in regrets(clear, population, 5, rng).values())
    swapped = np.stack([np.full(30, 2.0), np.full(30, 1.0)])  # the prompt prefers the population's worse one
    assert all(np.all(v == 2.0) for v in regrets(swapped, population, 5, rng).values())
    heavy = np.stack([np.r_[np.full(27, 0.5), np.full(3, 10.0)], np.full(30, 1.4)])  # mean 1.45 vs 1.4, rare tail
    mean = regrets(heavy, np.array([1.45, 1.4]), 5, rng)["mean"]
    assert 1.0 < mean.mean() < 1.0357  # 5 noises usually miss the tail and pick the first, sometimes not
