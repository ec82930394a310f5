"""The benchmarks measure exactly what a user runs: their ComfyUI backend reads the host through the
pack's own `nodes/host.py` and searches with the search node's own code, and the command line's demo
host starts from the KSampler's own noise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

CELLS = [("eps", "euler"), ("flow", "dpmpp_2m")]


@pytest.fixture(scope="module")
def backend(comfy):
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # last: ComfyUI's own `nodes` module must not be shadowed by the pack's folder
    from benchmarks.backend import ComfyBackend

    return ComfyBackend(os.environ["COMFYUI_PATH"])


def sampling_of(name: str):
    from benchmarks.backend import FLOW3, SD15

    return FLOW3 if name == "flow" else SD15


@pytest.mark.parametrize("name,sampler", CELLS)
def test_benchmark_search_is_the_node_search(backend, run, name, sampler):
    """Same model, prompt, sampler, steps, seed and budget: the benchmark's VRG+ equals the node's, bit for bit,
    and it measured the same pool (the node's own batch of 4 against the benchmark's 64)."""
    from benchmarks.vrg_plus import BASE

    model = run("VRGDemoModel", model=name)[0]
    positive = run("VRGDemoConditioning", digit="3")[0]
    out = run("VRGSearchSchedule", model=model, latent={"samples": torch.zeros(1, 4, 16, 16)}, sampler_name=sampler,
              scheduler=BASE[name], steps=4, seed=5, evaluations=400, batch_size=4, cfg=1.0, use_cache=False,
              positive=positive, step_range="")
    ours = backend.search(name, 3, sampler, BASE[name], 4, 5, 400)
    assert torch.equal(out[0].double(), torch.from_numpy(ours.sigmas).float().double())
    assert sorted(ours.candidates) == out.ui["candidates"]
    assert ours.chosen == out.ui["chosen"][0]


@pytest.mark.parametrize("name,sampler", CELLS)
def test_benchmark_pool_and_sampler_are_the_nodes(backend, name, sampler):
    import comfy.samplers

    host = backend.pack.nodes.host
    model = backend.model(name)
    request, _ = backend.pack.nodes.search.search_request(model, (1, 16, 16), sampler, "karras", 6, 0, 2000, 4, 1.0)
    pool = backend.candidates(sampling_of(name), 6, sampler)
    assert sorted(pool) == sorted(request.candidates)
    assert all(np.array_equal(pool[k], request.candidates[k]) for k in pool)
    shipped = {t[0] for t in host.SHIPPED_TABLES["flow" if name == "flow" else "eps"]}
    assert shipped <= set(pool), "the benchmark's pool lacks a shipped table the node measures"
    function = comfy.samplers.sampler_object(sampler).sampler_function
    assert backend.search_sampler(sampler, sampling_of(name)).function is function
    assert request.sampler.function is function


@pytest.mark.parametrize("name", ["eps", "flow"])
def test_demo_host_starts_from_the_ksamplers_noise(backend, name):
    """The command line's (and k-diffusion benchmarks') start equals the node's: prepare_noise scaled by noise_scaling,
    √(1 + σ²)·ε for EPS at σ_max, σ·ε below it."""
    from vrg_core.demo import load_demo_model
    from vrg_core.demo.host import ksampler_start

    demo = load_demo_model(name)
    node_start = backend.pack.nodes.host.start_states(backend.model(name).model, (1, 16, 16), 7)
    for sigma in (demo.sigma_max, demo.sigma_max * 0.5):
        assert torch.equal(ksampler_start(demo, 7)(6, sigma), node_start(6, sigma))


@pytest.mark.parametrize("name", ["eps", "flow"])
@pytest.mark.parametrize("steps", [4, 8, 10, 20, 25])
def test_demo_schedules_are_comfyuis(backend, name, steps):
    """The command line's own schedulers give ComfyUI's karras, exponential and simple on the demo models, and its
    published tables are the very ones the node measures for the model's kind (the same field)."""
    from vrg_core.demo import load_demo_model
    from vrg_core.demo.host import demo_schedules

    ours = demo_schedules(load_demo_model(name), steps)
    theirs = backend.candidates(sampling_of(name), steps, "euler")
    shipped = {t[0] for t in backend.host.SHIPPED_TABLES["flow" if name == "flow" else "eps"]}
    assert shipped <= set(ours), "the command line's pool lacks a shipped table the node measures"
    for scheduler, sigmas in ours.items():
        if scheduler in shipped:
            assert np.array_equal(sigmas, theirs[scheduler]), scheduler
        else:
            np.testing.assert_allclose(sigmas, theirs[scheduler], rtol=1e-6, err_msg=scheduler)


def test_sde_benchmark_runs_comfyuis_sampler_on_one_path_that_converges(backend, tmp_path):
    """benchmarks/sde_path: ComfyUI's dpmpp_2m_sde on one Brownian path per seed is deterministic and converges
    pathwise (a finer grid lands closer to the 320-step result), and its quick run writes its report."""
    from benchmarks.sde_path import SeedPath, main
    from benchmarks.subjects import demo_subject

    subject = demo_subject("eps")
    karras = {n: backend.sigmas(sampling_of("eps"), "karras", n).double().numpy() for n in (20, 80, 320)}
    path = SeedPath(backend, subject, 0, 8, 1.001 * float(karras[320][0]), 0.5 * float(karras[320][-2]))
    reference = path.final("dpmpp_2m_sde", karras[320])
    assert torch.equal(path.final("dpmpp_2m_sde", karras[320]), reference)
    far, near = (float((path.final("dpmpp_2m_sde", karras[n]) - reference).pow(2).mean()) for n in (20, 80))
    assert near < far / 4
    main(["--quick", "--subjects", "eps", "--out", str(tmp_path)])
    assert "| VRG+ |" in (tmp_path / "sde_path.md").read_text()
