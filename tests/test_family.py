"""One search for a range of step counts (`vrg_core.search.family`, `cached_family`) on the demo host."""

from __future__ import annotations

import numpy as np
import pytest

from vrg_core.demo import load_demo_model
from vrg_core.demo.host import DemoHost, base_scheduler, demo_schedules
from vrg_core.errors import VRGError
from vrg_core.search import SearchCache, StepRange, as_sampler, cached_family
from vrg_core.search.family import anchor_budgets, interpolated, least_evaluations, resampled, served_range


def test_a_step_range_reads_its_text_and_picks_its_anchors():
    assert StepRange.parse("4-30") == StepRange.parse(" 4 – 30 ") == StepRange(4, 30)
    assert StepRange.parse("8") == StepRange(8, 8) and str(StepRange(8, 8)) == "8" and str(StepRange(4, 30)) == "4-30"
    assert StepRange(4, 30).anchors() == [4, 8, 16, 30] and StepRange(4, 9).anchors() == [4, 9]
    assert StepRange(6, 6).anchors() == [6] and StepRange(2, 50).anchors() == [2, 4, 8, 16, 32, 50]
    for bad in ("", "4-", "30-4", "1-8", "4-51", "four", "4-8-12"):
        with pytest.raises(VRGError, match="step range"):
            StepRange.parse(bad)
    assert served_range("", 7) == StepRange(7, 7) and served_range("4-30", 7) == StepRange(4, 30)
    with pytest.raises(VRGError, match="steps 31 is outside the step range 4-30: set steps inside it"):
        served_range("4-30", 31)


def test_the_budget_is_shared_evenly_unless_an_anchor_needs_more():
    euler = as_sampler("euler")
    budgets = anchor_budgets([4, 8, 16, 30], 4000, euler)
    least = {n: least_evaluations(n, euler) for n in budgets}
    assert sum(budgets.values()) <= 4000 and all(budgets[n] >= least[n] for n in budgets)
    assert budgets[30] == least[30] > budgets[4] == budgets[8] == budgets[16]  # many steps: its least, the rest even
    assert anchor_budgets([4, 8], 1200, euler) == {4: 600, 8: 600}
    with pytest.raises(VRGError, match=f"allow at least {sum(least.values())}, or serve fewer step counts"):
        anchor_budgets([4, 8, 16, 30], sum(least.values()) - 1, euler)


def test_interpolation_keeps_the_anchors_and_each_schedules_ends():
    four = np.array([14.6146, 3.2, 1.4, 0.5, 0.0])
    eight = np.array([14.6146, 5.7, 3.2, 2.1, 1.4, 0.87, 0.51, 0.19, 0.0])
    anchors = {4: four, 8: eight}
    assert np.array_equal(interpolated(anchors, 4), four) and np.array_equal(interpolated(anchors, 8), eight)
    assert np.array_equal(resampled(eight, 8), eight) or np.allclose(resampled(eight, 8), eight, rtol=1e-12)
    for steps in (5, 6, 7):
        s = interpolated(anchors, steps)
        a, b = resampled(four, steps), resampled(eight, steps)
        assert len(s) == steps + 1 and s[0] == four[0] and s[-1] == 0 and np.all(np.diff(s) < 0)
        assert np.all((s[1:-1] >= np.minimum(a, b)[1:-1] * (1 - 1e-12)) & (s[1:-1] <= np.maximum(a, b)[1:-1] * (1 + 1e-12)))
    assert np.array_equal(interpolated({8: eight}, 12)[[0, -2, -1]], [eight[0], eight[-2], 0.0])  # beyond: resampled
    lower = np.array([7.372, 3.0, 1.0, 0.3, 0.0])  # a fixed schedule kept at 4 steps may start below sigma_max
    w = np.log(6 / 4) / np.log(8 / 4)
    assert interpolated({4: lower, 8: eight}, 6)[0] == pytest.approx(7.372 ** (1 - w) * 14.6146 ** w, rel=1e-12)


def test_a_family_serves_its_range_from_cached_anchor_searches(tmp_path):
    model = load_demo_model("eps")
    host = DemoHost(model, 3)

    def request_at(steps: int, budget: int):
        return host.request(demo_schedules(model, steps)[base_scheduler(model)], "euler", 0, budget)

    cache = SearchCache(tmp_path)
    seen = []
    family, cached = cached_family(StepRange(4, 8), 1200, as_sampler("euler"), request_at, lambda r: host.run(0),
                                   cache, progress=lambda done, total: seen.append((done, total)))
    assert cached == 0 and sorted(family.anchors) == [4, 8] and family.steps == StepRange(4, 8)
    assert family.evaluations <= 1200 and seen[-1][0] == seen[-1][1] and all(t == seen[0][1] for _, t in seen)
    assert np.array_equal(family.sigmas(4), family.anchors[4].sigmas) and "interpolated from the 4- and 8-step" \
        in family.source(6)
    with pytest.raises(VRGError, match="VRG\\+ was searched for 4-8 steps, not 9"):
        family.sigmas(9)
    again, cached = cached_family(StepRange(4, 8), 1200, as_sampler("euler"), request_at, lambda r: host.run(0), cache)
    assert cached == 2 and all(np.array_equal(again.sigmas(n), family.sigmas(n)) for n in range(4, 9))
