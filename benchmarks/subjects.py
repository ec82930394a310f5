"""The models the quality benchmark samples from, each with its exact or closest-to-exact metric.

* ``eps``  — the EPS demo model (SD1.5 discrete schedule), class-conditional 16×16 digits;
  metric: Fréchet distance (FD) to the 1 000 held-out digits in the digit classifier's features.
* ``flow`` — the CONST demo model (SD3/Flux-style, shift 3); same metric.
* ``gmm``  — the GMM testbed's learned MLP on SD1.5's schedule; metric: exact MMD² (×10³) to the
  true mixture (and FD to its exact moments).

Every subject gives ``batch(seed, n)``: noise (and labels) of one sample set of `n` samples,
fixed by the seed alone, so every schedule and sampler sees the same noise (paired).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from vrg_core.error_table import ErrorTable, TableInfo
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.profile import profile

from .backend import FLOW3, SD15, Sampling


@dataclasses.dataclass
class Batch:
    """One seed's sample set: noise [n, ...] and labels [n] (or None), fixed by the seed alone."""

    seed: int
    noise: torch.Tensor
    labels: torch.Tensor | None


@dataclasses.dataclass
class Subject:
    name: str
    title: str
    sampling: Sampling
    metric_name: str
    make_denoise: Callable[[Batch], Callable]  # batch -> denoise(x, sigma)
    metric: Callable[[torch.Tensor], float]  # one sample set -> value (lower is better)
    floor: Callable[[int, int], float]  # (n, seed) -> metric of real data (the noise floor)
    table: Callable[[str, int, int], ErrorTable]  # (split, grid, samples_per_level) -> error table
    noise_shape: tuple[int, ...]
    labelled: bool
    extra: dict = dataclasses.field(default_factory=dict)

    def batch(self, seed: int, n: int) -> Batch:
        noise = torch.randn((n, *self.noise_shape), generator=torch.Generator().manual_seed(1000 + seed))
        labels = torch.arange(10).repeat_interleave(-(-n // 10))[:n] if self.labelled else None
        return Batch(seed, noise, labels)


def demo_subject(name: str) -> Subject:
    from vrg_core.demo import load_demo_model, make_context
    from vrg_core.demo.data import load_digits
    from vrg_core.demo.metric import fd_to_heldout, load_classifier
    from vrg_core.demo.models import weights_path
    from vrg_core.demo.store import load_tensors

    model = load_demo_model(name)
    classifier = load_classifier()
    held_x, held_y = load_digits("heldout")
    train_x, train_y = load_digits("train")
    kind = model.kind

    def make_denoise(batch: Batch):
        ctx = make_context(batch.labels)
        return lambda x, sigma: model.denoise(x, sigma, ctx)

    def floor(n: int, seed: int) -> float:
        pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
        return fd_to_heldout(train_x[pick], classifier)

    def table(split: str, grid: int, samples: int) -> ErrorTable:
        x, y = (held_x, held_y) if split == "heldout" else (train_x[:len(held_x)], train_y[:len(held_x)])
        sigmas = noise_level_grid(model.sigma_min, model.sigma_max, grid, kind)
        with torch.inference_mode():
            return profile(lambda xb, s, i: model.denoise(xb, s, make_context(y[i])), x, kind, sigmas, samples,
                           batch_size=512, seed=0, info=TableInfo(source=f"demo {name} {split}"))

    return Subject(
        name=name, title=f"demo {name.upper()} ({'CONST flow, shift 3' if kind.is_flow else 'EPS, SD1.5 schedule'})",
        sampling=FLOW3 if kind.is_flow else SD15, metric_name="FD",
        make_denoise=make_denoise, metric=lambda s: fd_to_heldout(s.clamp(-1, 1), classifier), floor=floor,
        table=table, noise_shape=(1, 16, 16), labelled=True,
        extra={"model": model, "held": (held_x, held_y), "train": (train_x, train_y),
               "weights": f"demo_{name}.safetensors, fingerprint {model.fingerprint}, "
                          f"{load_tensors(weights_path(name))[1].get('steps', '?')} training steps"},
    )


def gmm_subject(quick: bool) -> Subject:
    from .gmm import build_testbed, gmm_table, mmd2_exact

    tb = build_testbed(quick)

    def floor(n: int, seed: int) -> float:
        return 1e3 * mmd2_exact(tb.gmm.sample(n, torch.Generator().manual_seed(5000 + seed)), tb.gmm)

    def table(split: str, grid: int, samples: int) -> ErrorTable:
        x = tb.heldout if split == "heldout" else tb.train
        return gmm_table(tb.model.denoise, x, grid, samples, source=f"gmm {split}")

    return Subject(
        name="gmm", title=f"GMM testbed ({tb.gmm.dim}-d, {len(tb.gmm.weights)} components, learned MLP, SD1.5 schedule)",
        sampling=SD15, metric_name="MMD²×10³",
        make_denoise=lambda batch: tb.model.denoise, metric=lambda s: 1e3 * mmd2_exact(s, tb.gmm), floor=floor,
        table=table, noise_shape=(tb.gmm.dim,), labelled=False, extra={"testbed": tb},
    )


def error_samples(subject: Subject, sigmas: np.ndarray, per_level: int, seed: int = 0) -> dict[float, torch.Tensor]:
    """Per noise level, the per-dimension errors of the direction d̂ − d* = (x0 − D̂)/σ, [per_level, dim] (held-out data)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    if subject.name == "gmm":
        tb = subject.extra["testbed"]
        x0 = tb.heldout[:per_level].float()
        denoise = lambda x, s: tb.model.denoise(x, s)  # noqa: E731
        labels = None
    else:
        x_all, y_all = subject.extra["held"]
        x0, labels = x_all[:per_level], y_all[:per_level]
        from vrg_core.demo import make_context

        ctx = make_context(labels)
        model = subject.extra["model"]
        denoise = lambda x, s: model.denoise(x, s, ctx)  # noqa: E731
    from vrg_core.parameterization import add_noise

    kind: ModelKind = subject.sampling.kind
    for s in sigmas:
        sig = torch.full((len(x0),), float(s))
        noise = torch.randn(x0.shape, generator=g)
        with torch.inference_mode():
            d = denoise(add_noise(x0, noise, sig, kind), sig)
        out[float(s)] = ((x0.double() - d.double()) / float(s)).reshape(len(x0), -1)
    return out
