"""The samplers and schedulers users run, imported from where they live — never copied here.

* ``comfyui`` (when ``COMFYUI_PATH`` points at a ComfyUI checkout): the node pack itself, imported as
  ComfyUI imports it, says what ComfyUI offers (`nodes/host.py`: schedulers, shipped tables, the
  KSampler's sigmas, sampler functions) on the demo models' real ComfyUI MODELs, and VRG+ is the
  search node's own code (`nodes/search.py`); samples come from ComfyUI's own
  ``comfy.samplers.sampler_object(name)`` (a KSAMPLER, including its initial-noise scaling).
* ``k-diffusion`` (otherwise; benchmark-only extra): the ``k_diffusion`` package's samplers and its
  Karras / exponential / DiscreteSchedule ("normal") schedules. ComfyUI-only schedulers (beta) and the
  ancestral sampler on flow models (k-diffusion's is variance-exploding only) are reported as unavailable;
  "simple" for flow models uses ``vrg_core.demo.sampling``, the published tables ComfyUI ships (AYS, GITS,
  OSS) ``vrg_core.published``; VRG+ is the command line's search (``vrg_core.demo.host``).

A model is given as ``denoise(x, sigma_batch) -> D`` (sigma_batch of shape [B]).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from vrg_core.parameterization import ModelKind
from vrg_core.search import DEFAULT_BATCH

SAMPLERS = ("euler", "dpmpp_2m", "euler_ancestral")
EPS_SCHEDULERS = ("normal", "karras", "exponential", "ays_sd1", "beta")
FLOW_SCHEDULERS = ("simple", "beta")
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
REPO = Path(__file__).resolve().parents[1]


class Unavailable(Exception):
    """This backend has no such sampler or scheduler for this model kind."""


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How a model's noise levels are defined (ComfyUI's ModelSamplingDiscrete / DiscreteFlow settings)."""

    kind: ModelKind
    flow_shift: float = 3.0

    @property
    def type(self) -> str:
        return "discrete_flow" if self.kind.is_flow else "discrete"


SD15 = Sampling(ModelKind.EPS)
FLOW3 = Sampling(ModelKind.CONST, 3.0)


def load_backend(prefer: str | None = None):
    """ComfyUI's when COMFYUI_PATH is set (or `prefer == "comfyui"`), else the k-diffusion package."""
    path = os.environ.get("COMFYUI_PATH")
    if prefer == "k-diffusion" or (prefer is None and not path):
        return KDiffusionBackend()
    if not path:
        raise RuntimeError("COMFYUI_PATH is not set; point it at a ComfyUI checkout")
    return ComfyBackend(path)


def import_pack(comfyui: str, name: str = "vrg_pack"):
    """This repository's node pack imported as ComfyUI imports it (a package), its `vrg_core` being this very
    `vrg_core` (so results, errors and model kinds are one set of classes); ComfyUI importable, CPU, no server."""
    if name in sys.modules:
        return sys.modules[name]
    if comfyui not in sys.path:
        sys.path.insert(0, comfyui)
    from comfy.cli_args import args

    args.cpu = True
    import vrg_core

    for module in pkgutil.walk_packages(vrg_core.__path__, "vrg_core."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for key, module in list(sys.modules.items()):
        if key == "vrg_core" or key.startswith("vrg_core."):
            sys.modules[f"{name}.{key}"] = module
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)
    pack.vrg_core = vrg_core
    importlib.import_module(f"{name}.nodes")
    return pack


class ComfyBackend:
    """ComfyUI as a user runs it: every schedule, sampler and search through the node pack's own host module
    (`nodes/host.py`) and search node (`nodes/search.py`)."""

    name = "comfyui"

    def __init__(self, path: str):
        self.pack = import_pack(path)
        self.host = self.pack.nodes.host
        import comfy.samplers as samplers
        import comfyui_version

        self._samplers = samplers
        self._models: dict = {}
        self.version = f"ComfyUI {comfyui_version.__version__}"

    def model(self, name: str):
        """Demo model `name` as the real ComfyUI MODEL that VRG Demo Model gives."""
        if name not in self._models:
            self._models[name] = self.pack.nodes.demo.comfy_demo_model(name)
        return self._models[name]

    def model_sampling(self, sampling: Sampling):
        """The demo model's own `model_sampling` (EPS: SD1.5's discrete schedule; flow: shift 3)."""
        return self.model("flow" if sampling.kind.is_flow else "eps").get_model_object("model_sampling")

    def sigmas(self, sampling: Sampling, scheduler: str, steps: int) -> torch.Tensor:
        process = "flow" if sampling.kind.is_flow else "eps"
        for name, module, node, arguments in self.host.SHIPPED_TABLES[process]:
            if name == scheduler:
                return self.host.shipped_table(module, node, arguments, steps).float()
        if any(scheduler == table[0] for tables in self.host.SHIPPED_TABLES.values() for table in tables):
            raise Unavailable(f"{scheduler} is not a table for {sampling.kind.label} models")
        return self._samplers.calculate_sigmas(self.model_sampling(sampling), scheduler, steps).float()

    def candidates(self, sampling: Sampling, steps: int, sampler: str) -> dict[str, np.ndarray]:
        """Every schedule the search node measures at `steps` for `sampler` (`host.candidate_schedules`)."""
        return self.host.candidate_schedules(self.model_sampling(sampling), steps, sampler)[0]

    def ksampler_sigmas(self, sampling: Sampling, scheduler: str, steps: int, sampler: str) -> torch.Tensor:
        """`sigmas` as the stock KSampler hands them to `sampler` (`host.ksampler_sigmas`)."""
        return self.host.ksampler_sigmas(self.model_sampling(sampling), scheduler, steps, sampler).float()

    def search(self, name: str, digit: int, sampler: str, scheduler: str, steps: int, seed: int, evaluations: int,
               table=None, variance_weight: float = 0.0):
        """The VRG+ node's own search on demo model `name` prompted with `digit`, cfg 1, no cache:
        the node's `search_request`, `guided_run` and the engine's `cached_search`, as the node calls them."""
        search = self.pack.nodes.search
        model = self.model(name)
        positive = self.pack.nodes.demo.VRGDemoConditioning.execute(str(digit)).result[0]
        request, _ = search.search_request(model, (1, 16, 16), sampler, scheduler, steps, seed, evaluations,
                                           DEFAULT_BATCH, 1.0, table, variance_weight)
        with torch.inference_mode():
            return self.pack.vrg_core.search.cached_search(request, search.guided_run(model, positive, None, 1.0,
                                                                                      request))[0]

    def family(self, name: str, digit: int, sampler: str, scheduler: str, step_range: str, seed: int,
               evaluations: int):
        """The VRG+ node's own search for a step range (`family_search`, as the node calls it) on demo model `name`
        prompted with `digit`, cfg 1, no cache: the `Family`."""
        search = self.pack.nodes.search
        positive = self.pack.nodes.demo.VRGDemoConditioning.execute(str(digit)).result[0]
        served = self.pack.vrg_core.search.StepRange.parse(step_range)
        with torch.inference_mode():
            return search.family_search(self.model(name), (1, 16, 16), sampler, scheduler, served, seed, evaluations,
                                        DEFAULT_BATCH, 1.0, None, 0.0, positive, None, None, None)[0]

    def guider(self, sampling: Sampling) -> SimpleNamespace:
        """What a sampler function reads of CFGGuider: `.inner_model.model_sampling`, `.model_patcher`."""
        ms = self.model_sampling(sampling)
        return SimpleNamespace(inner_model=SimpleNamespace(model_sampling=ms),
                               model_patcher=SimpleNamespace(get_model_object=lambda name: ms))

    def search_sampler(self, name: str, sampling: Sampling):
        """The search's `Sampler` for ComfyUI's sampler `name` (`host.comfy_sampler`), outside a guided run."""
        return self.host.comfy_sampler(name, self.guider(sampling))

    def sample(self, sampler: str, denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor,
               sampling: Sampling, seed: int) -> torch.Tensor:
        """ComfyUI's KSAMPLER.sample for `sampler` on an empty latent (its own noise scaling and seeding)."""
        guider = self.guider(sampling)

        class ModelWrap:  # what CFGGuider hands KSAMPLER: a callable with .inner_model.model_sampling
            inner_model, model_patcher = guider.inner_model, guider.model_patcher

            def __call__(self, x, sigma, model_options=None, seed=None, **kwargs):
                return denoise(x, sigma)

        k = self._samplers.sampler_object(sampler)
        with torch.no_grad():
            return k.sample(ModelWrap(), sigmas, {"seed": seed}, None, noise, latent_image=torch.zeros_like(noise),
                            disable_pbar=True)


class KDiffusionBackend:
    name = "k-diffusion"

    def __init__(self):
        try:
            import k_diffusion
        except ImportError as e:
            raise RuntimeError(
                f"without COMFYUI_PATH the benchmark needs the k-diffusion package ({e}); "
                "see benchmarks/README or set COMFYUI_PATH") from None
        self._k = k_diffusion
        self.version = f"k-diffusion {getattr(k_diffusion, '__version__', '?')}"
        self._tables: dict = {}
        self._models: dict = {}

    def _table(self, sampling: Sampling) -> torch.Tensor:
        from vrg_core.demo.models import eps_sigma_table, flow_sigma_table

        if sampling not in self._tables:
            self._tables[sampling] = flow_sigma_table(sampling.flow_shift) if sampling.kind.is_flow else eps_sigma_table()
        return self._tables[sampling]

    def sigmas(self, sampling: Sampling, scheduler: str, steps: int) -> torch.Tensor:
        table = self._table(sampling)
        lo, hi = float(table[0]), float(table[-1])
        ks = self._k.sampling
        if scheduler == "karras":
            return ks.get_sigmas_karras(steps, lo, hi).float()
        if scheduler == "exponential":
            return ks.get_sigmas_exponential(steps, lo, hi).float()
        if scheduler == "normal" and not sampling.kind.is_flow:
            return self._k.external.DiscreteSchedule(table, quantize=True).get_sigmas(steps).float()
        if scheduler == "simple" and sampling.kind.is_flow:
            from vrg_core.demo.sampling import simple_sigmas

            return simple_sigmas(SimpleNamespace(sigmas=table), steps)
        from vrg_core.published import PUBLISHED, published_schedules

        if scheduler in PUBLISHED:
            tables = published_schedules(sampling.kind, steps)
            if scheduler not in tables:
                raise Unavailable(f"{scheduler} is not a table for {sampling.kind.label} models")
            return torch.from_numpy(tables[scheduler]).float()
        raise Unavailable(f"scheduler {scheduler!r} for {sampling.kind.value} needs ComfyUI (set COMFYUI_PATH)")

    def _demo(self, name: str):
        """Demo model `name`, loaded once."""
        from vrg_core.demo import load_demo_model

        if name not in self._models:
            self._models[name] = load_demo_model(name)
        return self._models[name]

    def candidates(self, sampling: Sampling, steps: int, sampler: str) -> dict[str, np.ndarray]:
        """What the command line's search measures: the demo's own schedulers and the published tables for its
        kind (`demo.host.demo_schedules`)."""
        from vrg_core.demo.host import demo_schedules

        return demo_schedules(self._demo("flow" if sampling.kind.is_flow else "eps"), steps)

    def ksampler_sigmas(self, sampling: Sampling, scheduler: str, steps: int, sampler: str) -> torch.Tensor:
        return torch.from_numpy(self.candidates(sampling, steps, sampler)[scheduler])

    def search_sampler(self, name: str, sampling: Sampling):
        from vrg_core.search import as_sampler

        return as_sampler(name)

    def search(self, name: str, digit: int, sampler: str, scheduler: str, steps: int, seed: int, evaluations: int,
               table=None, variance_weight: float = 0.0):
        """The command line's search (the demo host, `cached_search`) on demo model `name` prompted with `digit`."""
        from vrg_core.demo.host import DemoHost, demo_schedules
        from vrg_core.search import cached_search

        model = self._demo(name)
        host = DemoHost(model, digit)
        request = host.request(demo_schedules(model, steps)[scheduler], sampler, seed, evaluations, table,
                               variance_weight)
        return cached_search(request, host.run(seed))[0]

    def sample(self, sampler: str, denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor,
               sampling: Sampling, seed: int) -> torch.Tensor:
        ks = self._k.sampling
        model = lambda x, sigma, **kw: denoise(x, sigma)  # noqa: E731
        x = noise * sigmas[0]  # k-diffusion's convention; the flow start x = σ0·ε for an empty latent too
        with torch.no_grad():
            if sampler == "euler":
                return ks.sample_euler(model, x, sigmas, disable=True)
            if sampler == "dpmpp_2m":
                return ks.sample_dpmpp_2m(model, x, sigmas, disable=True)
            if sampler == "euler_ancestral":
                if sampling.kind.is_flow:
                    raise Unavailable("k-diffusion's euler_ancestral is for variance-exploding (EPS) models only")
                g = torch.Generator().manual_seed(seed)
                noise_sampler = lambda s, s_next: torch.randn(x.shape, generator=g, dtype=x.dtype)  # noqa: E731
                return ks.sample_euler_ancestral(model, x, sigmas, disable=True, noise_sampler=noise_sampler)
        raise Unavailable(f"sampler {sampler!r} is not in this benchmark")
