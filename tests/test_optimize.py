import numpy as np
import pytest
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.errors import VRGError
from vrg_core.objective import cumulative_error
from vrg_core.optimize import auto_gamma, optimize_sigmas
from vrg_core.parameterization import ModelKind, discrete_vp_sigmas, flow_shift_sigma, noise_level_grid


def smooth_table(kind=ModelKind.EPS, lo=0.0292, hi=14.61, levels=40, wiggle=0.0):
    sig = noise_level_grid(lo, hi, levels, kind)
    w = 1.0 / (1.0 + sig**2) * (1 + wiggle * np.sin(7 * np.log(sig)))
    return ErrorTable.from_mean_error(kind, sig, w)


def karras(n, lo=0.0292, hi=14.61, rho=7.0):
    r = np.linspace(0, 1, n)
    s = (hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return np.append(s, 0.0)


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 20, 50, 100])
@pytest.mark.parametrize("wiggle", [0.0, 0.3])
def test_fixed_start_keeps_ends_and_never_raises_cpe(steps, wiggle):
    table = smooth_table(wiggle=wiggle)
    base = karras(steps)
    r = optimize_sigmas(base, table, start="fixed")
    assert len(r.sigmas) == len(base)
    assert r.sigmas[0] == base[0] and r.sigmas[-1] == base[-1]
    assert np.all(np.diff(r.sigmas) < 0)
    assert r.cpe_after <= r.cpe_before
    assert r.cpe_after == pytest.approx(cumulative_error(r.sigmas, table).total)


def test_gamma_box_is_respected():
    table = smooth_table(wiggle=0.3)
    base = karras(10)
    r = optimize_sigmas(base, table, gamma=0.02, start="paper", lam=0.0)
    ab = lambda s: 1 / (1 + s**2)  # noqa: E731
    alpha = lambda s: np.diff(np.log(np.append(1.0, ab(s[:-1][::-1]))))  # noqa: E731
    a0, a1 = np.exp(alpha(base)), np.exp(alpha(r.sigmas))
    assert np.all(np.abs(a1 - a0) <= np.minimum(0.02, np.minimum(a0, 1 - a0)) + 1e-12)


def test_gamma_zero_returns_base():
    table = smooth_table()
    base = karras(10)
    r = optimize_sigmas(base, table, gamma=0.0)
    np.testing.assert_allclose(r.sigmas, base, rtol=1e-12)


def test_auto_gamma():
    assert auto_gamma(10) == 0.05 and auto_gamma(11) == 0.01
    assert optimize_sigmas(karras(8), smooth_table()).gamma == 0.05


def test_denoise_below_one_and_schedule_not_ending_at_zero():
    table = smooth_table()
    partial = karras(12)[4:]  # denoise < 1: starts below sigma_max
    r = optimize_sigmas(partial, table)
    assert r.sigmas[0] == partial[0] and r.sigmas[-1] == 0
    head = karras(12)[:-3]  # stops early at a positive sigma
    r = optimize_sigmas(head, table)
    assert r.sigmas[0] == head[0] and r.sigmas[-1] == head[-1] > 0
    assert np.all(np.diff(r.sigmas) < 0) and r.cpe_after <= r.cpe_before


def test_flow_schedule_from_sigma_one():
    table = smooth_table(ModelKind.CONST, lo=float(flow_shift_sigma(1e-3, 3.0)), hi=1.0)
    t = np.linspace(1, 0, 11)
    base = flow_shift_sigma(t, 3.0)
    r = optimize_sigmas(base, table, start="fixed")
    assert r.sigmas[0] == 1.0 and r.sigmas[-1] == 0.0
    assert np.all(np.diff(r.sigmas) < 0) and r.cpe_after < r.cpe_before
    with pytest.raises(VRGError, match="flow"):
        optimize_sigmas(np.array([1.5, 0.5, 0.0]), table)


def test_accepts_float32_tensor_and_is_deterministic():
    table = smooth_table(wiggle=0.3)
    base = torch.from_numpy(karras(10)).float()
    a = optimize_sigmas(base, table, start="fixed")
    b = optimize_sigmas(base.clone(), table, start="fixed")
    assert a.sigmas.tobytes() == b.sigmas.tobytes()
    assert a.sigmas[0] == float(base[0])


@pytest.mark.parametrize(
    "sigmas, match",
    [
        ([], "at least 2"),
        ([1.0], "at least 2"),
        ([float("nan"), 1.0, 0.0], "NaN"),
        ([float("inf"), 1.0, 0.0], "NaN or infinity"),
        ([0.5, 1.0, 0.0], "decrease strictly"),
        ([1.0, 1.0, 0.0], "decrease strictly"),
        ([1.0, 0.5, -0.1], "negative"),
        ([500.0, 1.0, 0.0], "error table covers"),
        ([[1.0, 0.0]], "1-D"),
    ],
)
def test_bad_sigmas(sigmas, match):
    with pytest.raises(VRGError, match=match):
        optimize_sigmas(np.array(sigmas, dtype=float), smooth_table())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma": -0.1}, "outside"),
        ({"gamma": "big"}, "number or 'auto'"),
        ({"start": "free"}, "start mode"),
        ({"method": "adam"}, "method"),
        ({"interp": "cubic"}, "interpolation"),
        ({"method": "paper", "start": "fixed"}, "lets the start move"),
        ({"lam": float("nan"), "start": "paper"}, "lambda"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(VRGError, match=match):
        optimize_sigmas(karras(5), smooth_table(), **kwargs)


def test_sd15_discrete_sigmas_match_known_values():
    s = discrete_vp_sigmas()
    assert s[0] == pytest.approx(0.0292, abs=1e-4) and s[-1] == pytest.approx(14.6146, abs=1e-3)
