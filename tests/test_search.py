"""VRG+ schedule search (vrg_core.search): step formulas, the dynamic programme, budget, cache."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from vrg_core.errors import Cancelled, VRGError
from vrg_core.error_table import ErrorTable
from vrg_core.parameterization import ModelKind, discrete_vp_sigmas, noise_level_grid
from vrg_core.search import (
    METHOD, as_sampler, SearchCache, SearchResult, best_path, cache_settings, check, linearised_error, mismatch_curve,
    propagated_variance, refine, response_curve, run_teacher, sample, search_schedule, step_coefficients, step_errors,
)
from vrg_core.search.schedule_search import DAMPING, REFINED

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


def start_noise(dim: int = 64):
    """`start(count, σ)`: the same seeded noise at any σ (x = σ·n, as for an empty EPS latent)."""
    return lambda count, sigma: sigma * torch.randn((count, dim), generator=torch.Generator().manual_seed(3))


def search(denoise, base=KARRAS_5, sampler="euler", **kwargs):
    return search_schedule(denoise, start_noise(), base, sampler, ModelKind.EPS, 0.0292, **kwargs)


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
    with pytest.raises(ValueError, match="no step formula"):
        step_coefficients("heun", np.nan, 2.0, 1.0)


def test_gram_step_errors_equal_direct_computation():
    grid = noise_level_grid(0.03, 10.0, 12, ModelKind.EPS)[::-1].copy()
    denoise = gaussian_denoiser(SCALE)
    start = start_noise()(5, 10.0)
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


def test_search_holds_the_start_keeps_the_budget_and_beats_every_candidate():
    denoise = gaussian_denoiser(SCALE)
    others = {"uniform": np.append(np.geomspace(14.6146, 0.0292, 5), 0.0), "low": np.array([9.0, 3, 1, 0.3, 0.05, 0]),
              "too_long": np.append(np.geomspace(14.6146, 0.0292, 7), 0.0), "too_high": KARRAS_5 * 2}
    result = search(denoise, table=eps_table(), candidates=others, evaluations=2000)
    s = result.sigmas
    assert len(s) == 6 and s[0] == KARRAS_5[0] and s[-1] == 0 and np.all(np.diff(s) < 0)
    assert result.evaluations <= 2000 and result.samples >= 4
    assert {"uniform", "low", "base", "vrg"} <= set(result.candidates) and "too_long" not in result.candidates
    assert "too_high" not in result.candidates  # starts above the base's σ_0
    o = result.objectives
    assert o[result.chosen].total == min(v.total for v in o.values())
    assert {"base", "dp@0.5"} <= set(o) and sum(k.startswith("refined") for k in o) == 2 * REFINED
    assert set(result.screened) >= {"uniform", "low", "vrg"} | {f"dp@{d:g}" for d in DAMPING}
    # on exact Gaussian data the search finds a schedule clearly better than Karras
    assert o[result.chosen].discretisation < 0.8 * o["base"].discretisation
    assert all(v.variance == 0 for v in o.values())  # variance weight 0 by default


def test_search_needs_no_table_and_the_variance_term_needs_one():
    denoise = gaussian_denoiser(SCALE)
    plain = search(denoise)
    assert "vrg" not in plain.candidates and plain.variance_weight == 0
    weighted = search(denoise, table=eps_table(), variance_weight=1.0)
    assert weighted.objectives["base"].variance > 0


def test_search_is_deterministic_and_records_round_trip():
    args = (gaussian_denoiser(SCALE), KARRAS_5, "dpmpp_2m")
    a, b = search(*args, table=eps_table()), search(*args, table=eps_table())
    assert a.sigmas.tobytes() == b.sigmas.tobytes() and a.objectives == b.objectives
    again = SearchResult.from_record(json.loads(json.dumps(a.to_record())))
    assert again.sigmas.tobytes() == a.sigmas.tobytes() and again.objectives == a.objectives


def test_search_cancel_and_bad_inputs():
    denoise, table = gaussian_denoiser(SCALE), eps_table()
    with pytest.raises(Cancelled, match="nothing was saved"):
        search(denoise, should_stop=lambda: True)
    bad = [
        (dict(base=[14.6, 0.0]), "nothing to search"),
        (dict(base=KARRAS_5[:-1]), "must end at sigma 0"),
        (dict(base=np.append(np.geomspace(14.6, 0.03, 60), 0)), "at most 50"),
        (dict(sampler="heun"), "cannot be searched"),
        (dict(evaluations=100), "too few"),
        (dict(variance_weight=float("nan")), "variance weight"),
        (dict(base=[30.0, 5.0, 0.03, 0.0], table=table), "sigma"),  # above the table's range
        (dict(base=[14.6, float("nan"), 0.03, 0.0]), "NaN"),
        (dict(base=[0.02, 0.01, 0.0]), "least sigma"),
        (dict(table=ErrorTable.from_mean_error(ModelKind.CONST, np.linspace(0.01, 0.99, 8), np.ones(8))), "const"),
    ]
    for override, message in bad:
        with pytest.raises(VRGError, match=message):
            search(denoise, **override)

    def broken(x, sigma, index):
        return x * float("nan")
    with pytest.raises(VRGError, match="NaN or infinity"):
        search(broken)


def test_search_cache_finds_only_the_same_settings_and_sets_damage_aside(tmp_path):
    result = search(gaussian_denoiser(SCALE))
    settings = cache_settings(METHOD, KARRAS_5, {"k": KARRAS_5}, "euler", "abc", "", 2000, 0.0, 0, 1.0)
    cache = SearchCache(tmp_path)
    assert cache.find(settings) is None
    cache.store(result, settings)
    assert (tmp_path / "vrg_search_cache.json").stat().st_mode & 0o777 == 0o644
    found = SearchCache(tmp_path).find(settings)
    assert found is not None and found.sigmas.tobytes() == result.sigmas.tobytes()
    for other in (dict(settings, cfg=2.0), dict(settings, method=METHOD - 1), dict(settings, sampler="dpmpp_2m")):
        assert SearchCache(tmp_path).find(other) is None  # other settings or an older search: search again
    assert SearchCache(tmp_path).changed(dict(settings, seed=1)) == "seed"  # the reason, said on the node
    assert SearchCache(tmp_path).changed(settings) is None  # found: nothing to explain
    assert SearchCache(tmp_path).changed(dict(settings, seed=1, cfg=2.0)) is None  # no one reason
    assert SearchCache(tmp_path).changed(dict(settings, schedules="0" * 16)) is None  # not a setting a user names
    data = json.loads((tmp_path / "vrg_search_cache.json").read_text())
    record = next(iter(data["searches"].values()))
    record["sigmas"] = record["sigmas"][:3]  # the wrong number of sigmas for its steps
    (tmp_path / "vrg_search_cache.json").write_text(json.dumps(data))
    damaged = SearchCache(tmp_path)
    assert damaged.find(settings) is None and "searched again" in damaged.warnings[0]
    (tmp_path / "vrg_search_cache.json").write_text("{not json")
    broken = SearchCache(tmp_path)
    assert broken.find(settings) is None and "renamed" in broken.warnings[0]
    assert len(list(tmp_path.glob("vrg_search_cache.json.damaged-*"))) == 1
    (tmp_path / "vrg_search_cache.json").write_text("[1, 2]")  # damaged again within the same second
    assert SearchCache(tmp_path).find(settings) is None
    assert {p.read_text() for p in tmp_path.glob("vrg_search_cache.json.damaged-*")} == {"{not json", "[1, 2]"}
    broken.store(result, settings)
    assert SearchCache(tmp_path).find(settings) is not None


def test_search_on_the_demo_model_lowers_the_total_error():
    pytest.importorskip("safetensors")
    from vrg_core.demo import load_demo_model, make_context
    from vrg_core.demo.sampling import karras_sigmas

    model = load_demo_model("eps")
    base = karras_sigmas(model, 5).double().numpy()
    with torch.inference_mode():
        r = search_schedule(lambda x, s, i: model.denoise(x.reshape(-1, 1, 16, 16), s, make_context(i % 10)).reshape(len(x), -1),
                            start_noise(256), base, "euler", model.kind, model.sigma_min, evaluations=600)
    assert r.evaluations <= 600
    assert r.verdict.gain > 0 and r.objectives[r.verdict.searched].total < r.objectives["base"].total
    print(f"\ndemo eps euler 5 steps, 600 evaluations: {r.verdict.sentence()}")


def test_sample_matches_the_teacher_on_its_own_grid():
    grid = noise_level_grid(0.03, 10.0, 16, ModelKind.EPS)[::-1].copy()
    denoise = gaussian_denoiser(SCALE)
    start = start_noise()(3, 10.0)
    teacher = run_teacher(denoise, start, grid, 2, lambda count: None)
    final = sample(denoise, start, np.append(grid, 0.0), "dpmpp_2m")
    assert torch.equal(final, teacher.final)
    assert discrete_vp_sigmas()[0] < grid[-1]  # the grid is inside SD1.5's range


def test_linearised_error_is_exact_for_a_linear_model():
    # every dimension alike: D = c(σ)·x, so the model's response to any state error is c(σ) exactly
    denoise = gaussian_denoiser(torch.full((64,), 0.7))
    grid = noise_level_grid(0.03, 10.0, 30, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise()(6, 10.0), grid, 4, lambda count: None)
    c = 0.49 / (0.49 + grid**2)
    for sampler, path in [("euler", [0, 4, 11, 20, 29]), ("dpmpp_2m", [0, 2, 9, 17, 25, 28])]:
        sigmas = np.append(grid[path], 0.0)
        sampler = as_sampler(sampler)
        errors, rows = check(denoise, teacher, sigmas, sampler, teacher.start, 4, lambda count: None)
        error = float(errors.mean())
        assert errors.shape == (6,)  # one per noise
        assert rows.shape == (len(path) - 1, 4)  # one row per step after the first, from the first batch
        assert np.allclose(rows[:, 1] / rows[:, 2], c[path[1:]], rtol=1e-4)
        assert linearised_error(sigmas, teacher, sampler, c) == pytest.approx(error, rel=1e-4)
        assert linearised_error(sigmas, teacher, sampler, 0 * c) != pytest.approx(error, rel=0.05)
        # each row is explained whole by its own j (|ΔD|² = j²·|Δx|²), so unpooled the mismatch term adds nothing
        assert np.allclose(rows[:, 3], rows[:, 1] ** 2 / rows[:, 2], rtol=1e-6)
        mismatch = mismatch_curve(rows, len(grid), width=1e-3)
        assert np.all(mismatch < 1e-6)
        assert linearised_error(sigmas, teacher, sampler, c, mismatch) == pytest.approx(error, rel=1e-4)


def test_linearised_error_in_numpy_equals_the_sampler_functions_run():
    """Euler's and DPM++2M's step in numpy (`Sampler.linear_step`) gives what the sampler function gives on the
    coefficient vectors, off-grid sigmas and a σ_0 below the teacher's start included."""
    denoise = gaussian_denoiser(SCALE)
    grid = noise_level_grid(0.03, 10.0, 30, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise()(6, 10.0), grid, 4, lambda count: None)
    response = np.linspace(0.0, 1.0, len(grid))
    for name in ("euler", "dpmpp_2m"):
        sampler = as_sampler(name)
        assert sampler.linear_step == name
        by_function = dataclasses.replace(sampler, linear_step=None)
        for sigmas in (np.array([10.0, 3.3, 0.71, 0.2, 0.031, 0.0]), np.array([6.0, 2.0, 1.1, 0.02, 0.0])):
            fast = linearised_error(sigmas, teacher, sampler, response)
            assert fast == pytest.approx(linearised_error(sigmas, teacher, by_function, response), rel=1e-12)
            mismatched = linearised_error(sigmas, teacher, sampler, response, 0.3 * response)
            assert mismatched > 1.01 * fast
            assert mismatched == pytest.approx(linearised_error(sigmas, teacher, by_function, response, 0.3 * response),
                                               rel=1e-12)


def test_response_curve_pools_and_falls_back_to_the_nearest_row():
    rows = np.array([[2.0, 1.0, 4.0], [3.0, 3.0, 4.0], [40.0, 9.0, 10.0]])
    j = response_curve(rows, 50, width=1.0)
    assert j[2] == pytest.approx((1 + 3 * np.exp(-0.5)) / (4 + 4 * np.exp(-0.5)))
    assert j[40] == pytest.approx(0.9) and np.all((j > 0.25 - 1e-9) & (j < 0.9 + 1e-9))


def test_mismatch_curve_is_what_the_response_fit_leaves():
    # ΔD = j·Δx + r with r ⊥ Δx: rows (position, ⟨ΔD, Δx⟩, |Δx|², |ΔD|²)
    rows = np.array([[2.0, 0.5 * 4.0, 4.0, 0.25 * 4.0 + 1.0], [3.0, 0.5 * 4.0, 4.0, 0.25 * 4.0 + 3.0],
                     [40.0, 9.0, 10.0, 8.1]])
    rho = mismatch_curve(rows, 50, width=1.0)
    w = np.exp(-0.5)
    assert rho[2] == pytest.approx((1.0 + 3.0 * w) / (4.0 + 4.0 * w))  # j is 0.5 near both rows: what is left, pooled
    assert rho[40] == pytest.approx(0.0, abs=1e-12)  # the row j explains whole
    assert rho[20] >= 0 and response_curve(rows, 50, width=1.0)[2] == pytest.approx(0.5)


def test_the_mismatch_term_is_the_sampler_carrying_each_calls_unexplained_change():
    """For Euler the gain of call k's prediction at the final sample is Π of the later steps' factors, and the
    deviation from the teacher comes from the Gram matrix: the term is Σ_k g_k²·ρ·|Δx_k|² per dimension."""
    denoise = gaussian_denoiser(SCALE)
    grid = noise_level_grid(0.03, 10.0, 30, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise()(6, 10.0), grid, 6, lambda count: None)
    sigmas = np.append(grid[[0, 6, 14, 22]], 0.0)
    j, rho = np.full(len(grid), 0.4), np.full(len(grid), 0.2)
    error, states = 0.0, []
    x = teacher.start.double()
    G = len(grid)
    vectors = teacher.probe  # the first batch is every sample here
    for k, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        i = [0, 6, 14, 22][k]
        states.append(float(((x.reshape(-1) - vectors[i]) ** 2).sum()))
        d = vectors[G + i].reshape(x.shape) + 0.4 * (x - vectors[i].reshape(x.shape))
        x = x + (s_next - s) * (x - d) / s
    gains = []
    for k in range(len(sigmas) - 1):  # a unit change of call k's prediction, carried by Euler and j = 0.4
        g = 1 - sigmas[k + 1] / sigmas[k]
        for s, s_next in zip(sigmas[k + 1:-1], sigmas[k + 2:]):
            g *= s_next / s + (1 - s_next / s) * 0.4
        gains.append(g)
    error = float(np.sum(np.square(gains) * 0.2 * np.array(states))) / teacher.numel
    plain = linearised_error(sigmas, teacher, as_sampler("euler"), j)
    assert error > 0.01 * plain
    for sampler in (as_sampler("euler"), dataclasses.replace(as_sampler("euler"), linear_step=None)):
        assert linearised_error(sigmas, teacher, sampler, j, rho) - plain == pytest.approx(error, rel=1e-9)


def test_refine_lowers_its_objective_and_keeps_a_valid_schedule():
    denoise = gaussian_denoiser(SCALE)
    table = eps_table()
    grid = noise_level_grid(table.sigma_min, KARRAS_5[0], 40, ModelKind.EPS)[::-1].copy()
    teacher = run_teacher(denoise, start_noise()(8, KARRAS_5[0]), grid, 8, lambda count: None)
    response = np.clip(np.linspace(0, 1.2, len(grid)), 0, 1)
    variance = float(teacher.final.var(dim=0).mean())

    def objective(sigmas):
        return linearised_error(sigmas, teacher, as_sampler("euler"), response) + propagated_variance(sigmas, table, variance, 1.0)
    refined = refine(KARRAS_5, teacher, as_sampler("euler"), response, table, variance, 1.0)
    assert refined[0] == KARRAS_5[0] and refined[-1] == 0 and len(refined) == len(KARRAS_5)
    assert np.all(np.diff(refined) < 0) and refined[-2] >= grid[-1]
    assert objective(refined) < 0.9 * objective(KARRAS_5)
    assert refine(KARRAS_5, teacher, as_sampler("euler"), response, table, variance, 1.0).tobytes() == refined.tobytes()


def test_euler_ancestral_is_not_refined_and_progress_ends_full():
    seen = []
    r = search(gaussian_denoiser(SCALE), sampler="euler_ancestral", progress=lambda done, total: seen.append((done, total)))
    assert not any(k.startswith("refined") for k in r.objectives)
    assert seen[-1][0] == seen[-1][1] and r.evaluations <= 2000
    assert all(a[0] <= b[0] and a[1] == b[1] for a, b in zip(seen, seen[1:]))


def test_a_host_sampler_runs_its_own_function_and_counts_its_calls():
    """`host_sampler` builds the search's sampler from the host's function; unknown ones are refused with
    the covered list; a two-call sampler plans half the samples of a one-call one at the same budget."""
    from vrg_core.search import plan_for
    from vrg_core.search.coefficients import sample_dpmpp_2m, sample_euler
    from vrg_core.search.samplers import HOST_SAMPLERS, host_sampler

    asked = []

    def function_of(name):
        asked.append(name)
        return sample_euler

    lcm = host_sampler("lcm", function_of)
    assert asked == ["euler"] and lcm.stochastic and lcm.proxy == "euler"  # LCM is searched as Euler
    cfg_pp = host_sampler("dpmpp_2m_cfg_pp", lambda name: sample_dpmpp_2m)
    assert cfg_pp.name == "dpmpp_2m_cfg_pp" and not cfg_pp.stochastic and HOST_SAMPLERS["dpmpp_2m_sde"].options["eta"] == 0
    with pytest.raises(VRGError, match="'dpm_adaptive' cannot be searched.*uni_pc"):
        host_sampler("dpm_adaptive", function_of)
    heun_like = dataclasses.replace(as_sampler("dpmpp_2m"), calls_per_step=2)
    one, two = plan_for(2000, 8, "dpmpp_2m"), plan_for(2000, 8, heun_like)
    assert two.calls == 16 and two.samples < one.samples and two.evaluations <= 2000
    result = search(gaussian_denoiser(SCALE), sampler=cfg_pp, evaluations=1500)
    assert result.sampler == "dpmpp_2m_cfg_pp" and result.evaluations <= 1500


def test_a_budget_short_for_every_refinement_refines_less_before_refusing():
    """50 steps at the default 2 000 evaluations: fewer refinement rounds instead of a refusal."""
    from vrg_core.search.schedule_search import MIN_SAMPLES, ROUNDS, plan_for

    assert plan_for(2000, 5, "euler").rounds == ROUNDS and plan_for(2000, 5, "euler_ancestral").rounds == 0
    long = plan_for(2000, 50, "euler")
    assert long.rounds < ROUNDS and long.samples >= MIN_SAMPLES and long.evaluations <= 2000
    base = np.append(np.geomspace(14.6146, 0.0292, 50), 0.0)
    result = search(gaussian_denoiser(SCALE), base=base, evaluations=2000)
    assert len(result.sigmas) == 51 and result.evaluations <= 2000
    assert sum(k.startswith("refined") for k in result.objectives) == REFINED * long.rounds
    with pytest.raises(VRGError, match="too few"):
        search(gaussian_denoiser(SCALE), base=base, evaluations=1000)


def test_the_out_of_sample_verdict_keeps_a_searched_schedule_only_when_clearly_closer():
    from vrg_core.search.selection import judge

    rival = np.array([1.0, 2.0, 1.5, 0.8, 1.2, 2.5, 1.1, 0.9])
    clear = judge("dp@0.5", "ays_sd1", 0.5 * rival, rival)
    assert clear.kept == "dp@0.5" and abs(clear.gain - 0.5) < 1e-12 and 0 < clear.low <= 0.5 <= clear.high
    noisy = judge("dp@0.5", "ays_sd1", rival * np.array([0.6, 1.5, 0.7, 1.4, 0.8, 1.3, 0.9, 1.2]), rival)
    assert noisy.kept == "ays_sd1" and noisy.low < 0 < noisy.high
    assert "ays_sd1 is as close as anything found" in noisy.sentence() and "8 noises" in noisy.sentence()
    assert judge("dp@0.5", "karras", rival, rival).kept == "karras"  # level: the fixed schedule stays


def test_the_verdict_says_when_the_next_fixed_schedule_was_level_with_the_kept_one():
    from vrg_core.search.selection import Verdict, judge, margin

    rival = np.array([1.0, 2.0, 1.5, 0.8, 1.2, 2.5, 1.1, 0.9, 1.3, 1.0])
    noisy = rival * np.array([0.6, 1.5, 0.7, 1.4, 0.8, 1.3, 0.9, 1.2, 1.1, 0.9])
    level = judge("dp@0.5", "ddim_uniform", noisy, rival, margin("ddim_uniform", "ays_sd1", rival, noisy * 0.95))
    assert level.margin.level() and level.kept == "ddim_uniform"
    assert level.sentence().startswith("ddim_uniform and ays_sd1 are level for this model (ddim_uniform +3 % "
                                       "closer, 90% interval ")
    clear = judge("dp@0.5", "ays_sd1", noisy, rival, margin("ays_sd1", "karras", rival * 0.5, rival))
    assert not clear.margin.level() and clear.sentence().startswith("ays_sd1 is as close as anything found")
    assert Verdict.from_record(level.to_record()) == level  # as the cache stores it
    assert Verdict.from_record({k: v for k, v in level.to_record().items() if k != "margin"}).margin is None


def test_search_chooses_on_held_back_noises_and_records_the_verdict():
    scale = torch.linspace(0.5, 2.0, 64)
    calls = []

    def denoise(x, sigma, index):
        calls.append(index.clone())
        return gaussian_denoiser(scale)(x, sigma, index)

    r = search_schedule(denoise, start_noise(), KARRAS_5, "euler", ModelKind.EPS, 0.0292,
                        candidates={"exponential": np.r_[np.exp(np.linspace(np.log(14.6146), np.log(0.0292), 5)), 0]},
                        evaluations=2000)
    v = r.verdict
    assert v is not None and v.noises >= 3 and r.chosen == v.kept and np.array_equal(r.sigmas, r.candidates[v.kept])
    assert v.rival == r.rival and v.searched.startswith(("dp@", "refined")) and v.low <= v.gain <= v.high
    held_from = max(int(i.max()) for i in calls) + 1 - v.noises  # the held-back noises follow the teacher's
    assert held_from == r.samples
    assert SearchResult.from_record(json.loads(json.dumps(r.to_record()))).verdict == v


def test_a_candidate_a_rounding_above_the_start_is_kept_and_a_higher_one_left_out():
    """A1111's Align Your Steps starts at 14.615, SD 1.x's σ_max is 14.6146: it must stay a candidate."""
    from vrg_core.search.schedule_search import usable

    ays_sd1 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029, 0.0]
    assert usable("ays", ays_sd1, 11, 14.614643) is not None
    assert usable("ays", [14.7, *ays_sd1[1:]], 11, 14.614643) is None
