"""VRG Latent Distance: per image, how close a branch's samples came to the model's converged samples."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from ..vrg_core.search.selection import INTERVAL, mean_interval
from ..vrg_core.search.teacher import per_noise_distance
from .common import CATEGORY, report


def distance_text(label: str, samples: torch.Tensor, converged: torch.Tensor) -> tuple[str, list[float]]:
    """The text and per-image distances (mean squared per dimension) of `samples` to `converged`, image by image."""
    if samples.shape != converged.shape:
        raise VRGError(f"samples {tuple(samples.shape)} and converged {tuple(converged.shape)} differ in shape: "
                       "connect two KSamplers fed by the same Empty Latent (same size and batch)")
    distance = per_noise_distance(samples.double(), converged.double())
    mean, low, high = mean_interval(distance)
    per_image = ", ".join(f"{d:.3g}" for d in distance)
    return (f"{label or 'samples'}: {mean:.4g} from the converged samples\n({INTERVAL:.0%} interval {low:.3g} to "
            f"{high:.3g}, {len(distance)} images; mean squared distance per dimension)\nper image: {per_image}",
            distance.tolist())


class VRGLatentDistance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGLatentDistance",
            display_name="VRG Latent Distance",
            category=CATEGORY,
            description="Which branch came closer to the model's converged result: per image, the mean squared "
                        "distance per dimension of `samples` to `converged` — the same noise sampled finely (a "
                        "KSampler with the same seed and latent, dpmpp_2m at 100 steps). Lower is closer.",
            inputs=[io.Latent.Input("samples", tooltip="The latents to judge, e.g. the AFTER KSampler's."),
                    io.Latent.Input("converged", tooltip="The same seed and Empty Latent sampled finely: the "
                                                         "CONVERGED KSampler's latents."),
                    io.String.Input("label", default="", tooltip="Name of the judged branch in the text.")],
            outputs=[],
            is_output_node=True,
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, samples, converged, label) -> io.NodeOutput:
        text, distance = distance_text(label, samples["samples"], converged["samples"])
        return io.NodeOutput(ui=report(cls, text, distance=distance))


NODES = [VRGLatentDistance]
