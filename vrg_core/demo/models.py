"""The demo diffusion models, called exactly as ComfyUI calls a model.

Two models mirror real families (see ComfyUI's comfy/model_sampling.py and
BaseModel._apply_model):

* "eps" — an EPS model on Stable Diffusion 1.5's discrete schedule (ModelSamplingDiscrete:
  scaled-linear β 0.00085→0.012, 1000 steps). Noisy x = x0 + σ ε. The network sees
  x / sqrt(σ² + 1) and the timestep index of the table σ nearest to σ in log σ (an integer
  0..999, passed as float) and predicts ε̂; D = x − σ ε̂.
* "flow" — a CONST rectified-flow model (ModelSamplingDiscreteFlow, SD3-style, shift 3,
  multiplier 1000). σ(t) = shift·t / (1 + (shift − 1)·t), σ ∈ [σ(1/1000), 1]. Noisy
  x = (1 − σ) x0 + σ ε. The network sees x unchanged and timestep σ·1000 and predicts the
  velocity v = ε − x0; D = x − σ v.

Images ("latents") are [B, 1, 16, 16] in [-1, 1].
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import VRGError
from ..parameterization import ModelKind, discrete_vp_sigmas
from .nets import CONTEXT_DIM, NO_DIGIT, DemoUNet, UNetConfig
from ..fingerprint import model_fingerprint
from .store import WEIGHTS_DIR, load_tensors

MODEL_NAMES = ("eps", "flow")
TIMESTEPS = 1000
FLOW_SHIFT = 3.0
FLOW_MULTIPLIER = 1000.0


def eps_sigma_table() -> torch.Tensor:
    """ModelSamplingDiscrete.sigmas of SD1.5: 1000 σ, ascending, float32."""
    return torch.from_numpy(discrete_vp_sigmas(steps=TIMESTEPS)).float()


def eps_log_sigma_table() -> torch.Tensor:
    """ModelSamplingDiscrete.log_sigmas: log of the float64 σ table, then float32."""
    return torch.from_numpy(discrete_vp_sigmas(steps=TIMESTEPS)).log().float()


def flow_sigma_table(shift: float = FLOW_SHIFT) -> torch.Tensor:
    """ModelSamplingDiscreteFlow.sigmas: σ at t = 1/1000 … 1, ascending, float32.

    Computed in float32 as ComfyUI does (`flow_shift_sigma` is the float64 formula).
    """
    t = torch.arange(1, TIMESTEPS + 1) / TIMESTEPS
    return shift * t / (1 + (shift - 1) * t)


def discrete_timestep(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """ModelSamplingDiscrete.timestep: index of the table σ nearest in log σ, as float.

    `log_sigmas` is the ascending log σ table (`eps_log_sigma_table`). The result is an
    integer 0..999 (ComfyUI rounds to the nearest table entry; it does not interpolate).
    """
    dists = sigma.float().log()[None] - log_sigmas.reshape((-1,) + (1,) * sigma.ndim)
    return dists.abs().argmin(dim=0).reshape(sigma.shape).float()


@dataclasses.dataclass
class DemoModel:
    """A demo network with its model sampling.

    `sigmas` is the host's 1000-entry σ table (ascending, float32; for flow, derived from
    `shift`): ComfyUI's "simple"/"normal" schedulers read it. `log_sigmas` (EPS only)
    is ModelSamplingDiscrete's log table used by `timestep`. `shift` and `multiplier`
    are used by flow (CONST) models only.
    """

    name: str
    kind: ModelKind
    net: DemoUNet
    sigmas: torch.Tensor
    fingerprint: str
    log_sigmas: torch.Tensor | None = None
    shift: float = 1.0
    multiplier: float = FLOW_MULTIPLIER

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The timestep the network is given for noise levels σ (same shape, float32)."""
        if self.kind.is_flow:
            return sigma.float() * self.multiplier
        return discrete_timestep(sigma, self.log_sigmas)

    def network_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """ComfyUI's `calculate_input` (EPS: x / sqrt(σ² + 1); CONST: x) for σ of shape [B]."""
        if self.kind.is_flow:
            return x
        return x / (sigma.reshape(-1, 1, 1, 1) ** 2 + 1.0) ** 0.5

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float,
                context: torch.Tensor | None = None) -> torch.Tensor:
        """Denoised estimate D(x, σ) [B, 1, 16, 16] for noisy x at σ (scalar or [B]).

        `context` is [B, 1, 11] (see `make_context`) or None for unconditional.
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        output = self.net(self.network_input(x, sigma), self.timestep(sigma), context=context).float()
        return x - output * sigma.reshape(-1, 1, 1, 1)


def make_context(labels: "list[int] | torch.Tensor") -> torch.Tensor:
    """Class conditioning [B, 1, 11] float32: one-hot digits 0–9, 10 (`NO_DIGIT`) = unconditional."""
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > NO_DIGIT):
        raise VRGError(f"digit labels must be 0..9, or {NO_DIGIT} for unconditional")
    return F.one_hot(labels, CONTEXT_DIM).float()[:, None, :]


def build_model(name: str, tensors: dict[str, torch.Tensor], info: dict) -> DemoModel:
    """A `DemoModel` (float32, eval mode) from a weight file's tensors and JSON info."""
    kind = ModelKind.parse(info["kind"])
    net = DemoUNet(UNetConfig.from_dict(info["config"]))
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.eval().requires_grad_(False)
    if kind is ModelKind.EPS:
        return DemoModel(name=name, kind=kind, net=net, sigmas=eps_sigma_table(),
                         log_sigmas=eps_log_sigma_table(), fingerprint=model_fingerprint(net.state_dict()))
    if kind is ModelKind.CONST:
        shift = float(info["shift"])
        return DemoModel(name=name, kind=kind, net=net, sigmas=flow_sigma_table(shift), fingerprint=model_fingerprint(net.state_dict()),
                         shift=shift, multiplier=float(info["multiplier"]))
    raise VRGError(f"demo models are eps or const, not {kind.value}")


def weights_path(name: str) -> Path:
    """Path of a demo model's bundled weights."""
    if name not in MODEL_NAMES:
        raise VRGError(f"demo model {name!r} is unknown; use one of: {', '.join(MODEL_NAMES)}")
    return WEIGHTS_DIR / f"demo_{name}.safetensors"


def load_demo_model(name: str) -> DemoModel:
    """The bundled demo model "eps" or "flow", freshly loaded (float32, eval mode)."""
    tensors, info = load_tensors(weights_path(name))
    return build_model(name, tensors, info)
