"""The published fixed schedules (AYS, GITS, OSS) as vrg_core has them, and the demo host offering them by kind.
That they equal ComfyUI's scheduler nodes is checked against the real host (tests/comfy/test_published.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vrg_core.demo.host import demo_schedules
from vrg_core.demo.models import load_demo_model
from vrg_core.errors import VRGError
from vrg_core.parameterization import ModelKind
from vrg_core.published import AYS_SD1, GITS_120, OSS_WAN, PUBLISHED, loglinear, published_schedule, published_schedules

EPS_TABLES = {"ays_sd1", "ays_sdxl", "gits"}
FLOW_TABLES = {"oss_flux", "oss_wan"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 10, 19, 20, 21, 50, 200])
def test_a_published_schedule_is_descending_float64_ending_at_0(name, steps):
    sigmas = published_schedule(name, steps)
    assert isinstance(sigmas, np.ndarray) and sigmas.dtype == np.float64 and sigmas.shape == (steps + 1,)
    assert sigmas[-1] == 0 and np.all(np.isfinite(sigmas)) and np.all(np.diff(sigmas) < 0)


def test_published_levels_are_kept_at_their_own_step_count_and_interpolated_between():
    assert np.array_equal(published_schedule("ays_sd1", 10)[:-1], AYS_SD1[:-1])
    assert np.array_equal(published_schedule("oss_wan", 20)[:-1], OSS_WAN[:-1])
    for steps, row in GITS_120.items():
        assert np.array_equal(published_schedule("gits", steps)[:-1], row[:-1])
    # beyond its rows, GITS is its 20-step row log-linearly resampled; every table keeps its first level
    assert np.allclose(published_schedule("gits", 40)[:-1], loglinear(GITS_120[20], 40)[:-1], rtol=1e-15)
    assert published_schedule("ays_sdxl", 37)[0] == pytest.approx(14.6146412293, rel=1e-14)
    # log-linear: doubling the steps puts the table's own levels back at the even positions
    assert np.allclose(published_schedule("ays_sd1", 20)[:-1:2], AYS_SD1[:-1], rtol=1e-12)
    midpoint = np.sqrt(AYS_SD1[0] * AYS_SD1[1])
    assert published_schedule("ays_sd1", 20)[1] == pytest.approx(midpoint, rel=1e-12)


@pytest.mark.parametrize("steps", [0, -3])
def test_fewer_than_one_step_is_refused_by_name(steps):
    with pytest.raises(VRGError, match=rf"ays_sd1 needs at least 1 step, got {steps}"):
        published_schedule("ays_sd1", steps)


def test_an_unknown_name_is_refused_with_the_names():
    with pytest.raises(VRGError, match="no published schedule 'ays_sd3'.*ays_sd1, ays_sdxl, gits, oss_flux, oss_wan"):
        published_schedule("ays_sd3", 10)


def test_the_tables_follow_the_noise_process():
    for kind in (ModelKind.EPS, ModelKind.V_PREDICTION, ModelKind.EDM):
        assert set(published_schedules(kind, 8)) == EPS_TABLES
    assert set(published_schedules(ModelKind.CONST, 8)) == set(published_schedules("flow", 8)) == FLOW_TABLES


@pytest.mark.parametrize("name,tables", [("eps", EPS_TABLES), ("flow", FLOW_TABLES)])
def test_the_demo_host_offers_the_tables_of_its_models_kind(name, tables):
    """Under the node's names, as ComfyUI hands SIGMAS (float32 levels), beside the demo's own schedulers."""
    model = load_demo_model(name)
    offered = demo_schedules(model, 6)
    assert set(offered) == {"karras", "exponential", "simple"} | tables
    for table in tables:
        sigmas = offered[table]
        assert sigmas.dtype == np.float64 and np.array_equal(sigmas, published_schedule(table, 6).astype(np.float32))
        assert sigmas[0] <= model.sigma_max  # fits the model: the search keeps it (`usable`)
