"""Test-only ComfyUI nodes (linked into a test server's custom_nodes, never shipped): the family models of
`families.py` as MODEL / VAE / CONDITIONING, and a check that reports whether a LATENT is finite."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import families  # noqa: E402


class VRGTestFamilyModel:
    CATEGORY = "testing/vrg"
    FUNCTION = "build"
    RETURN_TYPES = ("MODEL", "VAE", "CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("model", "vae", "positive", "negative")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(families.FAMILIES),), "seed": ("INT", {"default": 0, "min": 0})}}

    def build(self, family, seed):
        return (families.model(family, seed), families.vae(family, seed + 1), families.conditioning(family, seed + 2),
                families.conditioning(family, seed + 3))


class VRGTestLatentCheck:
    CATEGORY = "testing/vrg"
    FUNCTION = "check"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",)}}

    def check(self, latent):
        samples = latent["samples"]
        return {"ui": {"finite": [bool(torch.isfinite(samples).all())], "shape": list(samples.shape),
                       "std": [float(samples.float().std())]}}


NODE_CLASS_MAPPINGS = {"VRGTestFamilyModel": VRGTestFamilyModel, "VRGTestLatentCheck": VRGTestLatentCheck}
