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
