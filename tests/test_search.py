"""VRG+ schedule search (vrg_core.search): step formulas, the dynamic programme, budget, cache."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from vrg_core.bundle import find_searched, load_bundled_table, store_searched
from vrg_core.errors import Cancelled, VRGError
from vrg_core.error_table import ErrorTable
from vrg_core.parameterization import ModelKind, discrete_vp_sigmas, noise_level_grid
from vrg_core.search import (
    DAMPING, METHOD, REFINED, SearchResult, best_path, cache_settings, check, linearised_error, propagated_variance, refine,
    response_curve, run_teacher, sample, search_schedule, step_coefficients, step_errors,
)

KARRAS_5 = np.array([14.6146, 4.7965, 1.2741, 0.2479, 0.0292, 0.0])


def gaussian_denoiser(scale: torch.Tensor):
    """The exact denoiser of centred Gaussian data with per-dimension std `scale` (x = x0 + σ·n)."""
    def denoise(x, sigma, index):
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
        return x * scale**2 / (scale**2 + s2)
    return denoise


def eps_table() -> ErrorTable:
    sig = noise_level_grid(0.0292, 14.6146, 24, ModelKind.EPS)
    return ErrorTable.from_mean_error(ModelKind.EPS, sig, 0.05 / (1 + sig))


def start_noise(sigma0: float, dim: int = 64):
    return lambda count: sigma0 * torch.randn((count, dim), generator=torch.Generator().manual_seed(3))


SCALE = torch.linspace(0.1, 1.5, 64)


def test_step_coefficients_are_comfyui_euler_and_dpmpp_2m():
    # Euler: x + (σn − σ)(x − D)/σ
    c_x, c_d, c_old = step_coefficients("euler", np.nan, 2.0, 0.5)
    assert (float(c_x), float(c_d), float(c_old)) == (0.25, 0.75, 0.0)
    # DPM++2M second order, k-diffusion's sample_dpmpp_2m written out
    sp, s, sn = 4.0, 2.0, 0.5
    h, h_last = np.log(s / sn), np.log(sp / s)
    r = h_last / h
    e = -np.expm1(-h)
    expected = (sn / s, e * (1 + 1 / (2 * r)), -e / (2 * r))
    assert np.allclose([float(c) for c in step_coefficients("dpmpp_2m", sp, s, sn)], expected, rtol=1e-14)
    # first step (no previous) is first order; a step to 0 returns D
    assert np.allclose([float(c) for c in step_coefficients("dpmpp_2m", np.nan, s, sn)], (sn / s, e, 0.0))
    assert [float(c) for c in step_coefficients("dpmpp_2m", sp, s, 0.0)] == [0.0, 1.0, 0.0]
    with pytest.raises(VRGError, match="cannot be searched"):
        step_coefficients("heun", np.nan, 2.0, 1.0)


def test_gram_step_errors_equal_direct_computation():
    grid = noise_level_grid(0.03, 10.0, 12, ModelKind.EPS)[::-1].copy()
    denoise = gaussian_denoiser(SCALE)
    start = start_noise(10.0)(5)
    teacher = run_teacher(denoise, start, grid, 2, lambda count: None)
    errors = step_errors(teacher, "dpmpp_2m")
    states, preds, x, old = [], [], start.double(), None
    schedule = np.append(grid, 0.0)
    for m, s in enumerate(grid):  # the teacher again, keeping every state explicitly
        d = denoise(x, torch.full((5,), s), None).double()
        states.append(x)
        preds.append(d)
        c = [float(v) for v in step_coefficients("dpmpp_2m", schedule[m - 1] if m else np.nan, s, schedule[m + 1])]
        x = c[0] * x + c[1] * d + (c[2] * old if old is not None else 0)
        old = d
    G = len(grid)
    target = states + [preds[-1]]
    for p, a, b in [(G, 0, 3), (0, 3, 7), (2, 5, G - 1), (4, G - 1, G), (1, 6, G)]:
        prev = schedule[p] if p < G else np.nan
        c = [float(v) for v in step_coefficients("dpmpp_2m", prev, schedule[a], schedule[b])]
        guess = c[0] * states[a] + c[1] * preds[a] + (c[2] * preds[p] if p < G else 0)
        direct = float((guess - target[b]).pow(2).mean())
        assert errors[p, a, b] == pytest.approx(direct, rel=1e-6)  # the model sees float32 states
    assert np.isinf(errors[3, 2, 5]) and np.isinf(errors[G, 1, 4]) and np.isinf(errors[2, 2, G])  # p < a < b; start


def test_best_path_is_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    G = 7
    costs = rng.random((G + 1, G, G + 1))
    for steps in (2, 3, 4):
        def total(path):
            prev = [G] + list(path[:-2])
            return sum(costs[p, a, b] for p, a, b in zip(prev, path[:-1], path[1:]))
        best = min((total([0, *mid, G]), [0, *mid, G]) for mid in itertools.combinations(range(1, G), steps - 1))
        masked = costs.copy()
        p, a, b = np.meshgrid(np.arange(G + 1), np.arange(G), np.arange(G + 1), indexing="ij")
        masked[~((a < b) & ((p < a) | ((p == G) & (a == 0))))] = np.inf
        assert best_path(masked, steps) == best[1]


def test_search_holds_the_start_keeps_the_budget_and_beats_vrg_alone():
    denoise = gaussian_denoiser(SCALE)
    result = search_schedule(denoise, start_noise(KARRAS_5[0]), KARRAS_5, eps_table(), "euler", evaluations=2000)
    s = result.sigmas
    assert len(s) == 6 and s[0] == KARRAS_5[0] and s[-2] >= KARRAS_5[-2] and s[-1] == 0 and np.all(np.diff(s) < 0)
    assert result.evaluations <= 2000 and result.samples >= 4
    o = result.objectives
    assert o[result.chosen].total == min(v.total for v in o.values())
    assert o[result.chosen].total <= o["vrg"].total
    searched = {f"search@{d:g}" for d in DAMPING} | {"vrg", "base"}
    refined = set(o) - searched
    assert set(o) >= searched and len(refined) == REFINED and all(k.split(":")[1] in searched for k in refined)
    # on exact Gaussian data the search finds a schedule clearly better than Karras
    assert o[result.chosen].discretisation < 0.8 * o["base"].discretisation


def test_search_is_deterministic_and_records_round_trip():
    args = (gaussian_denoiser(SCALE), start_noise(KARRAS_5[0]), KARRAS_5, eps_table(), "dpmpp_2m")
    a, b = search_schedule(*args), search_schedule(*args)
    assert a.sigmas.tobytes() == b.sigmas.tobytes() and a.objectives == b.objectives
    again = SearchResult.from_record(json.loads(json.dumps(a.to_record())))
    assert again.sigmas.tobytes() == a.sigmas.tobytes() and again.objectives == a.objectives


def test_search_cancel_and_bad_inputs():
    denoise, noise, table = gaussian_denoiser(SCALE), start_noise(KARRAS_5[0]), eps_table()
    with pytest.raises(Cancelled, match="nothing was saved"):
        search_schedule(denoise, noise, KARRAS_5, table, "euler", should_stop=lambda: True)
    bad = [
        (dict(base_sigmas=[14.6, 0.0]), "nothing to search"),
        (dict(base_sigmas=KARRAS_5[:-1]), "must end at sigma 0"),
        (dict(base_sigmas=np.append(np.geomspace(14.6, 0.03, 60), 0)), "at most 50"),
        (dict(sampler="heun"), "cannot be searched"),
        (dict(evaluations=100), "too few"),
        (dict(variance_weight=float("nan")), "variance weight"),
        (dict(base_sigmas=[30.0, 5.0, 0.03, 0.0]), "sigma"),  # above the table's range
        (dict(base_sigmas=[14.6, float("nan"), 0.03, 0.0]), "NaN"),
    ]
    for override, message in bad:
        kwargs = dict(denoise=denoise, noise=noise, base_sigmas=KARRAS_5, table=table, sampler="euler") | override
        with pytest.raises(VRGError, match=message):
            search_schedule(**kwargs)

    def broken(x, sigma, index):
        return x * float("nan")
    with pytest.raises(VRGError, match="NaN or infinity"):
        search_schedule(broken, noise, KARRAS_5, table, "euler")


def test_search_cache_in_the_bundle_index_format(tmp_path):
    table = eps_table()
    result = search_schedule(gaussian_denoiser(SCALE), start_noise(KARRAS_5[0]), KARRAS_5, table, "euler")
    settings = cache_settings(table, KARRAS_5, "abc", 2000, 1.0, 0, 1.0)
    assert find_searched(tmp_path, "t.safetensors", "euler", 5, settings) is None
    store_searched(tmp_path, "t.safetensors", "t.safetensors", result, settings)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["format"] == "vrg-schedule-index" and index["tables"]["t.safetensors"]["file"] == "t.safetensors"
    found = find_searched(tmp_path, "t.safetensors", "euler", 5, settings)
    assert found is not None and found.sigmas.tobytes() == result.sigmas.tobytes()
    other = cache_settings(table, KARRAS_5, "abc", 2000, 0.5, 0, 1.0)
    assert find_searched(tmp_path, "t.safetensors", "euler", 5, other) is None  # other settings: search again
    older = dict(settings, method=METHOD - 1)
    assert find_searched(tmp_path, "t.safetensors", "euler", 5, older) is None  # an older search: search again
    assert find_searched(tmp_path, "t.safetensors", "dpmpp_2m", 5, settings) is None
    index["tables"]["t.safetensors"]["searched"]["euler"]["5"]["sigmas"] = [1.0, 2.0]
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(VRGError, match="damaged"):
        find_searched(tmp_path, "t.safetensors", "euler", 5, settings)


def test_search_on_the_demo_model_lowers_the_total_error():
    pytest.importorskip("safetensors")
    from vrg_core.demo import load_demo_model, make_context
    from vrg_core.demo.sampling import karras_sigmas

    model = load_demo_model("eps")
    base = karras_sigmas(model, 5).double().numpy()
    noise = start_noise(float(base[0]), 256)
    with torch.inference_mode():
        r = search_schedule(lambda x, s, i: model.denoise(x.reshape(-1, 1, 16, 16), s, make_context(i % 10)).reshape(len(x), -1),
                            noise, base, load_bundled_table("demo_eps"), "euler", evaluations=600, grid_size=40)
    assert r.evaluations <= 600
    assert r.objectives[r.chosen].total < r.objectives["vrg"].total < r.objectives["base"].total
    print(f"\ndemo eps euler 5 steps, 600 evaluations: total error base {r.objectives['base'].total:.4g}, "
          f"VRG {r.objectives['vrg'].total:.4g}, VRG+ {r.objectives[r.chosen].total:.4g} ({r.chosen})")


def test_sample_matches_the_teacher_on_its_own_grid():
    grid = noise_level_grid(0.03, 10.0, 16, ModelKind.EPS)[::-1].copy()
    denoise = gaussian_denoiser(SCALE)
    start = start_noise(10.0)(3)
    teacher = run_teacher(denoise, start, grid, 2, lambda count: None)
    final = sample(denoise, start, np.append(grid, 0.0), "dpmpp_2m")
    assert torch.equal(final, teacher.final)
    assert discrete_vp_sigmas()[0] < grid[-1]  # the grid is inside SD1.5's range


def test_linearised_error_is_exact_for_a_linear_model():
    # every dimension alike: D = c(σ)·x, so the model's response to any state error is c(σ) exactly
    denoise = gaussian_denoiser(torch.full((64,), 0.7))
    grid = noise_level_grid(0.03, 10.0, 30, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise(10.0)(6), grid, 4, lambda count: None)
    c = 0.49 / (0.49 + grid**2)
    for sampler, path in [("euler", [0, 4, 11, 20, 29]), ("dpmpp_2m", [0, 2, 9, 17, 25, 28])]:
        sigmas = np.append(grid[path], 0.0)
        error, rows = check(denoise, teacher, sigmas, sampler, 4, lambda count: None)
        assert rows.shape == (len(path) - 1, 3)  # one row per step after the first, from the first batch
        assert np.allclose(rows[:, 1] / rows[:, 2], c[path[1:]], rtol=1e-4)
        assert linearised_error(sigmas, teacher, sampler, c) == pytest.approx(error, rel=1e-4)
        assert linearised_error(sigmas, teacher, sampler, 0 * c) != pytest.approx(error, rel=0.05)


def test_response_curve_pools_and_falls_back_to_the_nearest_row():
    rows = np.array([[2.0, 1.0, 4.0], [3.0, 3.0, 4.0], [40.0, 9.0, 10.0]])
    j = response_curve(rows, 50, width=1.0)
    assert j[2] == pytest.approx((1 + 3 * np.exp(-0.5)) / (4 + 4 * np.exp(-0.5)))
    assert j[40] == pytest.approx(0.9) and np.all((j > 0.25 - 1e-9) & (j < 0.9 + 1e-9))


def test_refine_lowers_its_objective_and_keeps_a_valid_schedule():
    denoise = gaussian_denoiser(SCALE)
    table = eps_table()
    grid = noise_level_grid(table.sigma_min, KARRAS_5[0], 40, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise(KARRAS_5[0])(8), grid, 8, lambda count: None)
    response = np.clip(np.linspace(0, 1.2, len(grid)), 0, 1)
    variance = float(teacher.final.var(dim=0).mean())

    def objective(sigmas):
        return linearised_error(sigmas, teacher, "euler", response) + propagated_variance(sigmas, table, variance, 1.0)
    refined = refine(KARRAS_5, teacher, "euler", response, table, variance, 1.0)
    assert refined[0] == KARRAS_5[0] and refined[-1] == 0 and len(refined) == len(KARRAS_5)
    assert np.all(np.diff(refined) < 0) and refined[-2] >= grid[-1]
    assert objective(refined) < 0.9 * objective(KARRAS_5)
    assert refine(KARRAS_5, teacher, "euler", response, table, variance, 1.0).tobytes() == refined.tobytes()


def test_euler_ancestral_is_not_refined_and_progress_ends_full():
    seen = []
    r = search_schedule(gaussian_denoiser(SCALE), start_noise(KARRAS_5[0]), KARRAS_5, eps_table(), "euler_ancestral",
                        progress=lambda done, total: seen.append((done, total)))
    assert not any(k.startswith("refined") for k in r.objectives)
    assert seen[-1][0] == seen[-1][1] and r.evaluations <= 2000
    assert all(a[0] <= b[0] and a[1] == b[1] for a, b in zip(seen, seen[1:]))
