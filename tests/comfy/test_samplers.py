"""Every sampler the VRG+ search covers, against ComfyUI's own sampler (KSAMPLER.sample) in the real host."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_ksampler import empty_latent

SCHEDULE = {"eps": np.array([14.6146, 7.3, 2.9, 1.1, 0.41, 0.12, 0.0]),
            "flow": np.array([1.0, 0.93, 0.78, 0.55, 0.3, 0.1, 0.0])}


class ModelWrap:
    """What CFGGuider hands a KSAMPLER: the model call, and the model patcher and base model behind it."""

    def __init__(self, patcher, denoise):
        self.model_patcher, self.inner_model, self.denoise = patcher, patcher.model, denoise

    def __call__(self, x, sigma, model_options=None, seed=None, **kwargs):
        return self.denoise(x, sigma)


def real_sample(name: str, wrap: ModelWrap, noise: torch.Tensor, sigmas: np.ndarray) -> torch.Tensor:
    """ComfyUI's KSAMPLER for the sampler `name` runs (its noise off as the search runs it), on an empty latent."""
    import comfy.samplers

    from vrg_pack.vrg_core.search.samplers import HOST_SAMPLERS

    spec = HOST_SAMPLERS[name]
    k = comfy.samplers.sampler_object(spec.runs)
    k.extra_options = {**k.extra_options, **spec.options}
    with torch.no_grad():
        return k.sample(wrap, torch.tensor(sigmas, dtype=noise.dtype), {"seed": 0}, None, noise,
                        latent_image=torch.zeros_like(noise), disable_pbar=True).double()


def start_states(patcher, noise: torch.Tensor, sigma0: float) -> torch.Tensor:
    """The KSampler's starting state from `noise` at σ_0 (the model's own noise scaling)."""
    ms = patcher.get_model_object("model_sampling")
    at = torch.tensor([sigma0], dtype=noise.dtype)
    top = bool(sigma0 >= float(ms.sigma_max) * (1 - 1e-5))
    return ms.noise_scaling(at, noise, torch.zeros_like(noise), top)


@pytest.mark.parametrize("kind", ["eps", "flow"])
def test_every_covered_sampler_runs_exactly_on_the_teachers_vectors(run, kind):
    """For a linear model (D = c·x + (1 + log σ)·v) the search's prediction (`linearised_error`, which runs
    the host's sampler function on the teacher's vectors) equals ComfyUI's own sampler, for every sampler."""
    import comfy.samplers

    from vrg_pack.vrg_core.parameterization import ModelKind, noise_level_grid
    from vrg_pack.vrg_core.search import linearised_error, run_teacher
    from vrg_pack.vrg_core.search.samplers import HOST_SAMPLERS
    from vrg_pack.nodes.host import comfy_sampler, covered_samplers

    patcher = run("VRGDemoModel", model=kind)[0]
    model_kind = ModelKind.EPS if kind == "eps" else ModelKind.CONST
    direction = torch.randn((1, 32), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = 0.6

    def linear(x, sigma):
        return c * x + (1 + torch.log(sigma.to(x.dtype))).reshape(-1, 1) * direction.to(x.dtype)

    wrap = ModelWrap(patcher, linear)
    sigmas = SCHEDULE[kind]
    noise = torch.randn((3, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start = start_states(patcher, noise, float(sigmas[0]))
    grid = noise_level_grid(0.0009, float(sigmas[0]), 40, model_kind)[::-1].copy()  # down past uni_pc's last 0.001
    teacher = run_teacher(lambda x, s, i: linear(x, s), start, grid, 3, lambda count: None)
    assert set(covered_samplers()) == set(HOST_SAMPLERS) and len(HOST_SAMPLERS) >= 30
    for name in covered_samplers():
        sampler = comfy_sampler(name, wrap)
        real = real_sample(name, wrap, noise.to(sampler.dtype), sigmas)
        measured = float((real - teacher.final).pow(2).mean())
        predicted = linearised_error(sigmas, teacher, sampler, np.full(len(grid), c))
        assert predicted == pytest.approx(measured, rel=1e-6 if sampler.dtype == torch.float64 else 1e-3), name
    assert "dpm_adaptive" in comfy.samplers.SAMPLER_NAMES and "dpm_adaptive" not in covered_samplers()


@pytest.mark.parametrize("kind", ["eps", "flow"])
def test_every_covered_sampler_carries_a_calls_unexplained_change_as_the_mismatch_term_says(run, kind):
    """The mismatch term of `linearised_error` (Σ_k g_k²·ρ·|Δx_k|²) for every sampler, against the host's own
    sampler function on a linear model: g_k the final sample's change per unit change of call k's prediction
    (the sampler run again with it), Δx_k the state at call k less the teacher's there."""
    from vrg_pack.vrg_core.parameterization import ModelKind, noise_level_grid
    from vrg_pack.vrg_core.search import linearised_error, run_teacher
    from vrg_pack.nodes.host import comfy_sampler, covered_samplers

    patcher = run("VRGDemoModel", model=kind)[0]
    model_kind = ModelKind.EPS if kind == "eps" else ModelKind.CONST
    direction = torch.randn((1, 32), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    change = torch.randn((1, 32), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c, rho = 0.6, 0.5
    sigmas = SCHEDULE[kind]
    noise = torch.randn((3, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start = start_states(patcher, noise, float(sigmas[0]))
    grid = noise_level_grid(0.0009, float(sigmas[0]), 40, model_kind)[::-1].copy()

    def linear(x, sigma):
        return c * x + (1 + torch.log(sigma.to(x.dtype))).reshape(-1, 1) * direction.to(x.dtype)

    teacher = run_teacher(lambda x, s, i: linear(x, s), start, grid, 3, lambda count: None)

    def calls_of(sampler, changed=None):
        """(final sample, |state − teacher's state|² per call) of `sampler` on the linear model, `change` added to
        call `changed`'s prediction."""
        deviations = []

        def model(x, sigma):
            (i,), (f,) = teacher.brackets(np.array([float(sigma.reshape(-1)[0])]))
            teacher_x = (1 - f) * teacher.probe[i] + f * teacher.probe[i + 1]
            deviations.append(float(((x.double().reshape(-1) - teacher_x) ** 2).sum()))
            out = linear(x, sigma)
            return out + change.to(out.dtype) if changed == len(deviations) - 1 else out

        return sampler.run(model, start, sigmas), deviations

    for name in covered_samplers():
        sampler = comfy_sampler(name, ModelWrap(patcher, linear))
        plain, deviations = calls_of(sampler)
        assert len(deviations) <= sampler.calls_per_step * (len(sigmas) - 1), name
        gains = []
        for k in range(len(deviations)):
            moved = calls_of(sampler, k)[0] - plain
            gains.append(float((moved * change).sum() / (change * change).sum() / len(start)))
            assert torch.allclose(moved, gains[-1] * change.expand_as(moved), atol=1e-4), name
        expected = float(np.sum(np.square(gains) * rho * np.array(deviations))) / teacher.numel
        assert expected > 0, name
        response, mismatch = np.full(len(grid), c), np.full(len(grid), rho)
        term = linearised_error(sigmas, teacher, sampler, response, mismatch) - linearised_error(sigmas, teacher,
                                                                                                  sampler, response)
        assert term == pytest.approx(expected, rel=1e-6 if sampler.dtype == torch.float64 else 1e-3), name


def test_every_covered_sampler_samples_the_demo_model_as_comfyui_does(run):
    """`vrg_core.search.sample` (the search's checks) with the host's sampler equals ComfyUI's KSAMPLER
    (noise off) on the demo model, for every covered sampler."""
    from vrg_pack.vrg_core.demo import load_demo_model, make_context
    from vrg_pack.vrg_core.search import sample
    from vrg_pack.nodes.host import comfy_sampler, covered_samplers

    patcher = run("VRGDemoModel", model="eps")[0]
    model = load_demo_model("eps")
    labels = torch.arange(4) % 10

    def denoise(x, sigma):
        return model.denoise(x.float(), sigma.float(), make_context(labels)).to(x.dtype)

    wrap = ModelWrap(patcher, denoise)
    sigmas = SCHEDULE["eps"]
    noise = torch.randn((4, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start = start_states(patcher, noise, float(sigmas[0]))
    for name in covered_samplers():
        sampler = comfy_sampler(name, wrap)
        ours = sample(lambda x, s, i: denoise(x, s), start, sigmas, sampler)
        theirs = real_sample(name, wrap, noise.to(sampler.dtype), sigmas)
        assert torch.allclose(ours, theirs, atol=1e-6 if sampler.dtype == torch.float64 else 1e-4), name


@pytest.mark.parametrize("sampler_name", ["uni_pc", "heun", "dpmpp_2m_sde"])
def test_search_node_serves_a_multistage_a_discarding_and_a_stochastic_sampler(run, sampler_name):
    """The searched schedule reaches ComfyUI's stock KSampler with the `vrg` scheduler exactly, also for a
    sampler that asks the scheduler for steps + 1 and drops the penultimate sigma (uni_pc)."""
    import comfy.samplers
    import nodes

    conditioning = run("VRGDemoConditioning", digit="4")[0]
    out = run("VRGSearchSchedule", model=run("VRGDemoModel", model="eps")[0], latent=empty_latent(1),
              sampler_name=sampler_name, scheduler="karras", steps=5, seed=0, evaluations=1200, batch_size=8,
              cfg=1.0, use_cache=False, positive=conditioning, step_range="")
    sigmas, patched = out[0], out[1]
    gain, low, high = out.ui["held_out_gain"]
    assert len(sigmas) == 6 and low <= gain <= high
    seen = []
    original = comfy.samplers.KSAMPLER.sample

    def recording(self, model_wrap, s, *args, **kwargs):
        seen.append(s.detach().cpu().clone())
        return original(self, model_wrap, s, *args, **kwargs)

    comfy.samplers.KSAMPLER.sample = recording
    try:
        latent = nodes.KSampler().sample(patched, 0, 5, 1.0, sampler_name, "vrg", conditioning, conditioning,
                                         empty_latent(), denoise=1.0)[0]["samples"]
    finally:
        comfy.samplers.KSAMPLER.sample = original
    assert torch.equal(seen[0], sigmas) and torch.isfinite(latent).all()


def test_a_searched_schedule_is_sampled_only_with_a_sampler_searched_alike(comfy):
    """The `vrg` scheduler's check: the sampler itself, the same function under another name, the *_cfg_pp
    variant and the _gpu twin are alike; a stochastic sampler searched on the same part is not."""
    import comfy.k_diffusion.sampling as k

    from vrg_pack.nodes.host import searched_alike

    assert searched_alike(k.sample_euler, "euler") and searched_alike(k.sample_euler, "ddim")
    assert searched_alike(k.sample_euler_cfg_pp, "euler") and searched_alike(k.sample_dpmpp_2m_sde_gpu, "dpmpp_2m_sde")
    assert not searched_alike(k.sample_lcm, "euler") and not searched_alike(k.sample_dpmpp_2m, "euler")
    assert not searched_alike(k.sample_euler_ancestral, "euler")


def test_every_sde_sampler_runs_on_comfyuis_own_brownian_path_for_each_noise(run):
    """A pathwise sampler's run in the search (`sample` with `Paths.noise`) is ComfyUI's KSAMPLER at its defaults
    (eta 1) with ComfyUI's BrownianTreeNoiseSampler holding one tree per noise, seeded as `Paths.seeds` says; a
    noise's result does not depend on the batch it runs in, and differs from the noise-free run."""
    import comfy.k_diffusion.sampling as k
    import comfy.samplers

    from vrg_pack.nodes.host import comfy_sampler, covered_samplers
    from vrg_pack.vrg_core.search import sample
    from vrg_pack.vrg_core.search.pathwise import paths_for
    from vrg_pack.vrg_core.search.samplers import HOST_SAMPLERS

    patcher = run("VRGDemoModel", model="eps")[0]
    direction = torch.randn((1, 32), generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def linear(x, sigma):
        return 0.6 * x + (1 + torch.log(sigma.to(x.dtype))).reshape(-1, 1) * direction.to(x.dtype)

    wrap, sigmas = ModelWrap(patcher, linear), SCHEDULE["eps"]
    noise = torch.randn((4, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start, index = start_states(patcher, noise, float(sigmas[0])), torch.arange(4)
    pathwise = [n for n in covered_samplers() if HOST_SAMPLERS[n].pathwise]
    assert {"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu"} <= set(pathwise)
    for name in pathwise:
        sampler = comfy_sampler(name, wrap)
        assert sampler.pathwise, name
        paths = paths_for(sampler, [sigmas], seed=7)
        ours = sample(lambda x, s, i: linear(x, s), start, sigmas, sampler, index, noise=paths.noise(start, index))
        k_sampler = comfy.samplers.sampler_object(name)
        tree = k.BrownianTreeNoiseSampler(noise, torch.tensor(paths.low), torch.tensor(paths.high),
                                          seed=paths.seeds(index), cpu=True)
        k_sampler.extra_options = {**k_sampler.extra_options, "noise_sampler": tree}
        with torch.no_grad():
            theirs = k_sampler.sample(wrap, torch.tensor(sigmas), {"seed": 0}, None, noise,
                                      latent_image=torch.zeros_like(noise), disable_pbar=True).double()
        assert torch.allclose(ours, theirs, atol=1e-6), name
        alone = sample(lambda x, s, i: linear(x, s), start[2:], sigmas, sampler, index[2:],
                       noise=paths.noise(start[2:], index[2:]))
        assert torch.allclose(alone, ours[2:], atol=1e-9), name
        assert not torch.allclose(ours, sample(lambda x, s, i: linear(x, s), start, sigmas, sampler), atol=1e-3), name
