"""The published schedules are in two places: ComfyUI's scheduler nodes (which the node reads through
`nodes/host.py`) and `vrg_core.published` (which the command line and the demo read). This keeps them the same."""

from __future__ import annotations

import numpy as np
import pytest

STEPS = range(2, 51)


def shipped_rows(comfy):
    """(name, noise process, module, node, arguments) of every table the node measures."""
    host = comfy.pack.nodes.host
    return [(name, process, *rest) for process, rows in host.SHIPPED_TABLES.items() for name, *rest in rows]


def test_vrg_core_has_every_table_the_node_measures_for_the_same_process(comfy):
    from vrg_pack.vrg_core.published import PUBLISHED

    assert {name: process for name, process, *_ in shipped_rows(comfy)} == {k: v[0] for k, v in PUBLISHED.items()}


@pytest.mark.parametrize("name", ["ays_sd1", "ays_sdxl", "gits", "oss_flux", "oss_wan"])
def test_published_schedules_are_comfyuis_nodes_output_at_every_step_count(comfy, name):
    """Bit for bit once rounded to float32, as ComfyUI's nodes output SIGMAS, at full denoise, steps 2–50."""
    from vrg_pack.vrg_core.published import published_schedule

    host = comfy.pack.nodes.host
    (module, node, arguments), = [rest for n, _, *rest in shipped_rows(comfy) if n == name]
    for steps in STEPS:
        theirs = host.shipped_table(module, node, arguments, steps)
        ours = published_schedule(name, steps)
        assert str(theirs.dtype) == "torch.float32", (name, steps)
        assert np.array_equal(ours.astype(np.float32), theirs.numpy()), (name, steps)


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_ays_is_a_candidate_on_comfyuis_sd1_noise_schedule(comfy, steps):
    """AYS, about the best fixed schedule on SD 1.x, must be measured by the search there: ComfyUI's SD 1.x / SDXL
    noise schedule starts at σ 14.61464 (float32 of its betas), its AYS node's tables within a rounding of it."""
    from comfy.model_sampling import EPS, ModelSamplingDiscrete

    from vrg_pack.vrg_core.search.schedule_search import fixed_pool

    class SD1Sampling(ModelSamplingDiscrete, EPS):
        pass  # what ComfyUI builds for SD 1.x and SDXL (linear betas 0.00085-0.012, 1000 steps)

    host = comfy.pack.nodes.host
    sampling = SD1Sampling()
    base = host.ksampler_sigmas(sampling, "karras", steps, "euler").double().numpy()
    candidates, _ = host.candidate_schedules(sampling, steps, "euler")
    assert abs(candidates["ays_sd1"][0] / base[0] - 1) < 1e-6
    assert {"ays_sd1", "ays_sdxl"} <= set(fixed_pool(base, None, candidates))
