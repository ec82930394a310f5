"""The demo networks: a small class-conditional UNet and a digit classifier (16×16, 1 channel).

`DemoUNet.forward(x, timesteps, context=None, **kwargs)` has the call signature ComfyUI's
BaseModel uses for its `diffusion_model`: `x` is the network input [B, 1, 16, 16] (already
scaled by the model's `calculate_input`), `timesteps` the model's timestep [B] as float
(0..999 for the discrete EPS model, σ·1000 for the flow model), and `context` the class
conditioning [B, 1, 11]: a one-hot row per sample, digits 0–9 and index 10 = "no digit"
(unconditional). Extra keyword arguments (control, transformer_options, …) are ignored.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_DIGITS = 10
NO_DIGIT = 10  # the context index meaning "unconditional"
CONTEXT_DIM = NUM_DIGITS + 1


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Shape of a `DemoUNet`.

    The 16×16 image is cut into 2×2 patches (8×8 grid of 4 channels); `channels[i]` is the
    width at grid resolution 8 / 2**i, with `blocks` residual blocks per level on the way
    down and on the way up (the lowest level: `blocks` plus one middle block).
    `embed_dim` is the timestep/class embedding width.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    embed_dim: int = 128
    groups: int = 8

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "blocks": self.blocks, "embed_dim": self.embed_dim,
                "groups": self.groups}

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        return cls(channels=tuple(int(c) for c in data["channels"]), blocks=int(data["blocks"]),
                   embed_dim=int(data["embed_dim"]), groups=int(data["groups"]))


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of float timesteps [B] (as Stable Diffusion's UNet)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv ×2 with a scale/shift from the embedding and a residual path."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class DemoUNet(nn.Module):
    """A small UNet for [B, 1, 16, 16] inputs, conditioned on timestep and digit class.

    Sized for CPU speed: it works on 2×2 patches (8×8 grid) and widths that oneDNN
    convolves efficiently; downsampling is a 2×2 stride-2 conv, upsampling a 1×1 conv
    followed by pixel shuffle.
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        ch, emb, g, n = config.channels, config.embed_dim, config.groups, config.blocks
        self.time_embed = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_embed = nn.Linear(CONTEXT_DIM, emb, bias=False)
        self.conv_in = nn.Conv2d(4, ch[0], 3, padding=1)
        self.down = nn.ModuleList(nn.ModuleList(ResBlock(c, c, emb, g) for _ in range(n)) for c in ch)
        self.downsample = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(ch[:-1], ch[1:]))
        self.mid = ResBlock(ch[-1], ch[-1], emb, g)
        self.upsample = nn.ModuleList(nn.Conv2d(b, 4 * a, 1) for a, b in zip(ch[:-1], ch[1:]))
        self.up = nn.ModuleList(
            nn.ModuleList([ResBlock(2 * c, c, emb, g)] + [ResBlock(c, c, emb, g) for _ in range(n - 1)])
            for c in ch[:-1])
        self.norm_out = nn.GroupNorm(g, ch[0])
        self.conv_out = nn.Conv2d(ch[0], 4, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, timesteps: torch.Tensor, context: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Joint embedding [B, embed_dim] of timesteps [B] (or one) and context [B, 1, 11] (or None)."""
        timesteps = timesteps.reshape(-1).expand(batch) if timesteps.numel() == 1 else timesteps.reshape(batch)
        if context is None:
            context = F.one_hot(torch.full((batch,), NO_DIGIT), CONTEXT_DIM)
        emb = self.time_embed(timestep_embedding(timesteps, self.config.embed_dim))
        return emb + self.class_embed(context.reshape(batch, CONTEXT_DIM).to(emb.dtype))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                **kwargs) -> torch.Tensor:
        """Prediction [B, 1, 16, 16] (ε for the EPS model, velocity for the flow model)."""
        emb = self.embed(timesteps, context, x.shape[0])
        h = self.conv_in(F.pixel_unshuffle(x, 2))
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            if level < len(self.downsample):
                skips.append(h)
                h = self.downsample[level](h)
        h = self.mid(h, emb)
        for level in reversed(range(len(self.up))):
            h = torch.cat([F.pixel_shuffle(self.upsample[level](h), 2), skips.pop()], dim=1)
            for block in self.up[level]:
                h = block(h, emb)
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), 2)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Widths of a `DigitClassifier`; `feature_dim` is the penultimate feature size."""

    channels: tuple[int, ...] = (32, 64, 64)
    feature_dim: int = 64

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "feature_dim": self.feature_dim}

    @classmethod
    def from_dict(cls, data: dict) -> "ClassifierConfig":
        return cls(channels=tuple(int(c) for c in data["channels"]), feature_dim=int(data["feature_dim"]))


class DigitClassifier(nn.Module):
    """A small CNN on [B, 1, 16, 16] digits in [-1, 1]; `features` gives the FD embedding."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_prev = 1
        for i, c in enumerate(config.channels):
            layers += [nn.Conv2d(c_prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            c_prev = c
        self.body = nn.Sequential(*layers)
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(c_prev * (16 >> (len(config.channels) - 1)) ** 2,
                                                             config.feature_dim), nn.ReLU())
        self.head = nn.Linear(config.feature_dim, NUM_DIGITS)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features [B, feature_dim], logits [B, 10]) of images [B, 1, 16, 16]."""
        feats = self.feature(self.body(x))
        return feats, self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 10]."""
        return self.features(x)[1]
