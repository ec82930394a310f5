import json
import struct

import numpy as np
import pytest
import torch

from vrg_core.error_table import ErrorTable, TableInfo
from vrg_core.errors import Cancelled, VRGError
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.profile import profile
from vrg_core.table_io import load_table, save_table, table_from_bytes, table_from_text, table_to_bytes, table_to_text

DATA_STD = 0.8


def analytic_denoiser(kind: ModelKind, extra: float, seed: int = 1):
    """Exact posterior mean for x0 ~ N(0, DATA_STD²) plus injected error of per-dim variance (extra·σ)²."""
    g = torch.Generator().manual_seed(seed)

    def denoise(x, sigma, index):
        s = sigma.reshape(-1, 1, 1, 1).double()
        v = DATA_STD**2
        if kind.is_flow:
            mean = (1 - s) * v / ((1 - s) ** 2 * v + s**2) * x.double()
        else:
            mean = v / (v + s**2) * x.double()
        return (mean + extra * s * torch.randn(x.shape, generator=g, dtype=torch.float64)).float()

    return denoise


def true_w(kind: ModelKind, sigma: np.ndarray, extra: float) -> np.ndarray:
    v = DATA_STD**2
    post = v / ((1 - sigma) ** 2 * v + sigma**2) if kind.is_flow else v / (v + sigma**2)
    return post + extra**2


@pytest.mark.parametrize("kind, lo, hi", [(ModelKind.EPS, 0.03, 14.6), (ModelKind.CONST, 0.003, 1.0)])
def test_profiler_recovers_known_error_curve(kind, lo, hi):
    x0 = DATA_STD * torch.randn((512, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    grid = noise_level_grid(lo, hi, 12, kind)
    table = profile(analytic_denoiser(kind, 0.3), x0, kind, grid, samples_per_level=400, batch_size=100, seed=3)
    assert table.sigmas[-1] == hi and np.all(table.count == 400)
    z = (table.mean_mse - true_w(kind, grid, 0.3)) / table.standard_error
    assert np.all(np.abs(z) < 3), z
    assert np.all(np.abs(table.mean_bias) < 0.05)


def test_profile_is_deterministic_and_batch_size_free():
    x0 = torch.randn((7, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    grid = noise_level_grid(0.03, 14.6, 5, ModelKind.EPS)
    exact = lambda x, s, i: x / (1 + s.reshape(-1, 1, 1, 1) ** 2)  # noqa: E731 — deterministic denoiser
    a = profile(exact, x0, ModelKind.EPS, grid, 9, batch_size=4, seed=5)
    b = profile(exact, x0, ModelKind.EPS, grid, 9, batch_size=13, seed=5)
    c = profile(exact, x0, ModelKind.EPS, grid, 9, batch_size=4, seed=6)
    assert table_to_bytes(a) == table_to_bytes(b)
    assert not np.array_equal(a.sum_mse, c.sum_mse)


def test_profile_batches_mix_levels_and_progress_and_cancel():
    x0 = torch.zeros((3, 1, 2, 2))
    grid = noise_level_grid(0.03, 14.6, 4, ModelKind.EPS)
    seen, calls = [], []

    def denoise(x, s, i):
        seen.append(sorted(set(s.tolist())))
        return x * 0.5

    profile(denoise, x0, ModelKind.EPS, grid, 5, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert all(len(levels) == 4 for levels in seen[:-1])
    assert calls[-1] == (20, 20)
    with pytest.raises(Cancelled):
        profile(denoise, x0, ModelKind.EPS, grid, 5, batch_size=4, should_stop=lambda: len(seen) > 6)


@pytest.mark.parametrize(
    "x0, kw, match",
    [
        (torch.zeros((0, 1, 2, 2)), {}, "empty"),
        (torch.full((2, 1, 2, 2), float("nan")), {}, "NaN"),
        (torch.zeros((2, 1, 2, 2)), {"samples_per_level": 0}, "samples per level"),
        (torch.zeros((2, 1, 2, 2)), {"batch_size": 0}, "batch size"),
    ],
)
def test_profile_bad_input(x0, kw, match):
    args = dict(samples_per_level=2, batch_size=2)
    args.update(kw)
    grid = noise_level_grid(0.03, 14.6, 4, ModelKind.EPS)
    with pytest.raises(VRGError, match=match):
        profile(lambda x, s, i: x, x0, ModelKind.EPS, grid, **args)


def test_model_returning_nan_is_reported():
    grid = noise_level_grid(0.03, 14.6, 4, ModelKind.EPS)
    with pytest.raises(VRGError, match="model returned NaN"):
        profile(lambda x, s, i: x * float("nan"), torch.zeros((2, 1, 2, 2)), ModelKind.EPS, grid, 2, 2)


def random_samples(seed, n=500, levels=6):
    rng = np.random.default_rng(seed)
    return rng.integers(0, levels, n), rng.gamma(2.0, 0.1, n), rng.normal(0, 0.01, n)


def test_merge_of_halves_equals_whole():
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    level, mse, bias = random_samples(0)
    whole = ErrorTable.from_samples(ModelKind.EPS, grid, level, mse, bias)
    a = ErrorTable.from_samples(ModelKind.EPS, grid, level[:200], mse[:200], bias[:200], TableInfo(dataset_size=3))
    b = ErrorTable.from_samples(ModelKind.EPS, grid, level[200:], mse[200:], bias[200:], TableInfo(dataset_size=4))
    m = a.merge(b)
    for name in ("count", "sum_mse", "sum_mse_sq", "sum_mean_error"):
        np.testing.assert_allclose(getattr(m, name), getattr(whole, name), rtol=1e-12)
    np.testing.assert_allclose(m.standard_error, whole.standard_error, rtol=1e-9)
    assert m.info.dataset_size == 7


def test_merge_refuses_other_kind_grid_or_model():
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    t = ErrorTable.from_mean_error(ModelKind.EPS, grid, np.ones(6))
    with pytest.raises(VRGError, match="different noise-level grids"):
        t.merge(ErrorTable.from_mean_error(ModelKind.EPS, grid * 1.01, np.ones(6)))
    with pytest.raises(VRGError, match=r"table of flow \(const\) models"):
        t.merge(ErrorTable.from_mean_error(ModelKind.CONST, grid / 20, np.ones(6)))
    fa = ErrorTable.from_mean_error(ModelKind.EPS, grid, np.ones(6), TableInfo(model_fingerprint="a"))
    with pytest.raises(VRGError, match="different models"):
        fa.merge(ErrorTable.from_mean_error(ModelKind.EPS, grid, np.ones(6), TableInfo(model_fingerprint="b")))


def test_standard_error_matches_numpy():
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    level, mse, bias = random_samples(1)
    t = ErrorTable.from_samples(ModelKind.EPS, grid, level, mse, bias)
    for i in range(6):
        v = mse[level == i]
        assert t.standard_error[i] == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), rel=1e-9)


def test_interpolation_hits_grid_points_and_clamps():
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    t = ErrorTable.from_mean_error(ModelKind.EPS, grid, np.linspace(1, 0.1, 6))
    for interp in ("loglog", "paper"):
        w, _ = t.interpolate(grid, interp)
        np.testing.assert_allclose(w, t.mean_mse, rtol=1e-12)
        w_out, dw_out = t.interpolate(np.array([0.001, 100.0]), interp)
        np.testing.assert_allclose(w_out, [1.0, 0.1], rtol=1e-12)
        np.testing.assert_array_equal(dw_out, 0.0)


@pytest.mark.parametrize("interp", ["loglog", "paper"])
@pytest.mark.parametrize("kind", [ModelKind.EPS, ModelKind.CONST])
def test_interpolation_derivative(interp, kind):
    hi = 1.0 if kind.is_flow else 14.6
    grid = noise_level_grid(0.03, hi, 9, kind)
    t = ErrorTable.from_mean_error(kind, grid, np.exp(np.sin(np.arange(9.0))))
    s = np.sqrt(grid[1:-1] * grid[2:])  # strictly inside segments
    _, dw = t.interpolate(s, interp)
    h = s * 1e-7
    numeric = (t.interpolate(s + h, interp)[0] - t.interpolate(s - h, interp)[0]) / (2 * h)
    np.testing.assert_allclose(dw, numeric, rtol=1e-4)


def test_file_and_text_round_trip(tmp_path):
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    level, mse, bias = random_samples(2)
    info = TableInfo(model_fingerprint="abc123", cfg=7.5, dataset_size=10, seed=3, created="2026-11-21T00:00:00+00:00", source="t")
    t = ErrorTable.from_samples(ModelKind.EPS, grid, level, mse, bias, info)
    path = save_table(t, tmp_path / "sub" / "t.safetensors")
    for u in (load_table(path), table_from_text(table_to_text(t))):
        assert u.kind == t.kind and u.info == t.info
        for name in ("sigmas", "count", "sum_mse", "sum_mse_sq", "sum_mean_error"):
            assert getattr(u, name).tobytes() == getattr(t, name).tobytes()
    assert list((tmp_path / "sub").iterdir()) == [path]  # no temporary file left behind


def _safetensors_bytes(meta: dict) -> bytes:
    header = json.dumps({"__metadata__": meta, "x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 8


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty or truncated"),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00{", "bad header length"),
        (b"\x02\x00\x00\x00\x00\x00\x00\x00\xff\xfe", "unreadable header"),
        (b'{"sigmas": [1, 2]}', "not a safetensors file"),
        (_safetensors_bytes({"format": "other"}), "not a VRG error table"),
        (_safetensors_bytes({"format": "vrg-error-table", "version": "99"}), "newer VRG"),
        (_safetensors_bytes({"format": "vrg-error-table", "version": "1", "kind": "eps"}), "lacks the arrays"),
    ],
)
def test_bad_table_bytes(data, match):
    with pytest.raises(VRGError, match=match):
        table_from_bytes(data)


def test_truncated_and_oversized_files(tmp_path):
    grid = noise_level_grid(0.03, 14.6, 6, ModelKind.EPS)
    data = table_to_bytes(ErrorTable.from_mean_error(ModelKind.EPS, grid, np.ones(6)))
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 20])
    with pytest.raises(VRGError, match="damaged"):
        load_table(tmp_path / "cut.safetensors")
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(VRGError, match="over the"):
        load_table(big)
    with pytest.raises(VRGError, match="does not exist"):
        load_table(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("text, match", [("hello", "must start with"), ("VRG1:@@@", "not valid base64"), ("VRG1:AAAA", "truncated")])
def test_bad_table_text(text, match):
    with pytest.raises(VRGError, match=match):
        table_from_text(text)


def test_invalid_tables_are_refused():
    grid = noise_level_grid(0.03, 14.6, 4, ModelKind.EPS)
    with pytest.raises(VRGError, match="no samples"):
        ErrorTable.from_samples(ModelKind.EPS, grid, np.array([0, 1, 2]), np.ones(3), np.zeros(3))
    with pytest.raises(VRGError, match="NaN"):
        ErrorTable.from_mean_error(ModelKind.EPS, grid, np.array([1, np.nan, 1, 1]))
    with pytest.raises(VRGError, match="ascending"):
        ErrorTable.from_mean_error(ModelKind.EPS, grid[::-1], np.ones(4))
    with pytest.raises(VRGError, match="model kind"):
        ModelKind.parse("latent-consistency")
    assert ModelKind.parse("Flow") is ModelKind.parse("const") is ModelKind.CONST  # the CLI's two names
    assert ModelKind.CONST.label == "flow (const)" and ModelKind.EPS.label == "eps"
