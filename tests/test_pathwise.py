"""VRG+ for a pathwise (SDE) sampler: every check runs the sampler on each noise's own Brownian path, against the
same SDE solved on the fine grid on that path (vrg_core.search.pathwise).

The SDE sampler and the Brownian paths here are small stand-ins written for these tests (a k-diffusion-style
ancestral sampler whose noise is the path's increment, and a seeded random walk per sample); ComfyUI's own
SDE samplers and BrownianTreeNoiseSampler are run in tests/comfy/test_search_node.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from test_search import SCALE, gaussian_denoiser, start_noise
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.search import Sampler, plan_for, sample, search_schedule
from vrg_core.search.pathwise import Paths
from vrg_core.search.teacher import per_noise_distance

BASE = np.array([14.6146, 4.7965, 1.2741, 0.2479, 0.0292, 0.0])
CANDIDATES = {"geometric": np.append(np.geomspace(14.6146, 0.0292, 5), 0.0),
              "low": np.array([14.6146, 2.0, 0.5, 0.1, 0.02, 0.0])}


def sample_ancestral_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, noise_sampler=None):
    """An ancestral sampler for x = x0 + σ·n whose fresh noise is `noise_sampler(σ, σ_next)` (eta 0: Euler)."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = model(x, s * x.new_ones(x.shape[0]))
        up = min(float(s_next), eta * float(s_next * (s ** 2 - s_next ** 2).sqrt() / s))
        down = (s_next ** 2 - up ** 2).sqrt()
        x = d + (x - d) * down / s
        if up > 0:
            x = x + noise_sampler(s, s_next) * up
    return x


class Walks:
    """Brownian paths as seeded random walks, one per sample (linear between 4 097 points over [low, high]);
    records every interval made and refuses a query outside it."""

    def __init__(self):
        self.intervals: list[tuple[float, float]] = []

    def __call__(self, x: torch.Tensor, low: float, high: float, seeds: list[int]):
        self.intervals.append((low, high))
        t = torch.linspace(low, high, 4097, dtype=torch.float64)
        steps = [torch.randn((4096, *x.shape[1:]), generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                 for s in seeds]
        walks = torch.stack([torch.cat([torch.zeros_like(w[:1]), w.cumsum(0)]) for w in steps]) * (t[1] - t[0]).sqrt()

        def at(sigma):
            sigma = float(sigma)
            assert low <= sigma <= high, (sigma, low, high)
            i = min(int((sigma - low) / (high - low) * 4096), 4095)
            f = (sigma - float(t[i])) / float(t[i + 1] - t[i])
            return (1 - f) * walks[:, i] + f * walks[:, i + 1]

        return lambda sigma, sigma_next: ((at(sigma_next) - at(sigma)) / abs(float(sigma_next - sigma)) ** 0.5).to(
            x.dtype)


def sde_sampler(walks: Walks | None) -> Sampler:
    """The stand-in SDE sampler as a host gives it: noise-free with eta 0, pathwise with `walks`."""
    return Sampler("ancestral_sde", sample_ancestral_sde, {"eta": 0.0}, proxy="euler", stochastic=True,
                   brownian=walks, path_options=None if walks is None else {})


def search(sampler: Sampler, batch_size: int = 64, seed: int = 0):
    return search_schedule(gaussian_denoiser(SCALE), start_noise(), BASE, sampler, ModelKind.EPS, 0.0292,
                           candidates=CANDIDATES, evaluations=1500, batch_size=batch_size, seed=seed)


def test_a_pathwise_sampler_is_judged_against_its_own_limit_on_each_noises_path():
    """Every measured schedule's error is its SDE run on the noise's path against the same SDE on the fine grid
    on the same path; the budget counts the limit's runs; the result is the same whatever the batch, and
    bit-identical run to run."""
    walks = Walks()
    sampler = sde_sampler(walks)
    result = search(sampler)
    plan = plan_for(1500, 5, sampler)
    measured = {result.candidates[k].tobytes() for k in result.objectives}  # names of one schedule run once
    assert plan.path == plan.reference and result.evaluations <= plan.evaluations <= 1500
    assert result.evaluations == (result.samples * (plan.grid + plan.path + (2 + len(measured)) * plan.calls)
                                  + plan.held * (plan.path + 3 * plan.calls))  # the limits, 2 noise-free runs
    (low, high), = set(walks.intervals)
    assert low <= 0.5 * 0.02 and high >= 14.6146  # every candidate's levels, and the fine grid's
    paths = Paths(sampler, low, high, 0)
    numbers = torch.arange(result.samples)
    states = start_noise()(result.samples, 14.6146)
    fine = np.append(noise_level_grid(0.0292, 14.6146, plan.reference, ModelKind.EPS)[::-1], 0.0)
    denoise = gaussian_denoiser(SCALE)
    limit = sample(denoise, states, fine, sampler, numbers, noise=paths.noise(states, numbers))
    for name in ("base", "geometric"):
        run = sample(denoise, states, result.candidates[name], sampler, numbers, noise=paths.noise(states, numbers))
        assert np.isclose(result.objectives[name].total, per_noise_distance(run, limit).mean(), rtol=1e-9), name
    noise_free = sample(denoise, states, result.candidates["base"], sampler, numbers)
    assert not np.isclose(result.objectives["base"].total, per_noise_distance(noise_free, limit).mean(), rtol=1e-3)
    small = search(sde_sampler(Walks()), batch_size=3)
    assert small.chosen == result.chosen
    assert all(np.isclose(small.objectives[k].total, v.total, rtol=1e-9) for k, v in result.objectives.items())
    assert result.verdict.pathwise and not search(sde_sampler(None)).verdict.pathwise
    again = search(sde_sampler(Walks()))
    assert again.sigmas.tobytes() == result.sigmas.tobytes() and again.verdict == result.verdict


def test_path_seeds_are_each_noises_own_and_the_searchs_seed_draws_others():
    """A noise's path seed depends on the search seed and its number alone (not its batch); another search seed
    gives other paths, so another search's figures are not the same draw."""
    paths = Paths(sde_sampler(Walks()), 0.01, 15.0, 0)
    assert paths.seeds(torch.arange(2, 4)) == paths.seeds(torch.arange(6))[2:4]
    assert len(set(paths.seeds(torch.arange(64)))) == 64
    assert not set(paths.seeds(torch.arange(8))) & set(dataclasses.replace(paths, seed=1).seeds(torch.arange(8)))
    assert search(sde_sampler(Walks()), seed=1).objectives["base"].total != search(sde_sampler(Walks())).objectives[
        "base"].total


def test_without_the_hosts_paths_an_sde_sampler_is_searched_on_its_noise_free_part():
    """No `brownian` (a host that gives no paths): the plan spends nothing on a limit, and the checks are the
    noise-free runs against the teacher, as for Euler a."""
    walks = Walks()
    plain = search(sde_sampler(None))
    assert plan_for(1500, 5, sde_sampler(None)).path == 0 and not walks.intervals
    assert plain.objectives["base"].total != search(sde_sampler(walks)).objectives["base"].total


def test_compare_runs_a_pathwise_sampler_on_each_noises_path_against_its_own_limit():
    """VRG Compare Schedules with an SDE sampler: the reference is the same SDE on the fine grid on each noise's
    path, every schedule runs on the same paths, and the table says so; with no paths it stays noise-free."""
    from vrg_core.compare import compare_schedules
    from vrg_core.search.pathwise import paths_for

    walks, denoise = Walks(), gaussian_denoiser(SCALE)
    sampler = sde_sampler(walks)
    schedules = {"base": BASE, **CANDIDATES}
    found = compare_schedules(denoise, start_noise(), schedules, sampler, ModelKind.EPS, 0.0292, noises=6,
                              reference_steps=50)
    limit = np.append(noise_level_grid(0.0292, 14.6146, 50, ModelKind.EPS)[::-1], 0.0)
    paths, states, numbers = paths_for(sampler, [limit, *schedules.values()], 0), start_noise()(6, 14.6146), torch.arange(6)
    reference = sample(denoise, states, limit, sampler, numbers, noise=paths.noise(states, numbers))
    assert torch.allclose(found.reference, reference, atol=1e-12)
    low = sample(denoise, states, CANDIDATES["low"], sampler, numbers, noise=paths.noise(states, numbers))
    assert np.allclose(found.measured["low"].distance, per_noise_distance(low, reference), rtol=1e-9)
    assert "ancestral_sde's own limit (50 steps" in found.lines()[0] and "noise-free" not in " ".join(found.lines())
    plain = compare_schedules(denoise, start_noise(), schedules, sde_sampler(None), ModelKind.EPS, 0.0292, noises=6,
                              reference_steps=50)
    assert "converged samples (DPM++2M" in plain.lines()[0] and "noise-free part" in plain.lines()[-1]
