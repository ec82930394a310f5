"""VRG Profile: measure a model's prediction error per noise level through the host's sampling path."""

from __future__ import annotations

import time

import numpy as np
import torch

import comfy.utils
from comfy_api.v0_0_2 import io

from ..vrg_core.error_table import ErrorTable, TableInfo, now_iso
from ..vrg_core.errors import VRGError
from ..vrg_core.memory import check_profile_memory
from ..vrg_core.parameterization import noise_level_grid
from ..vrg_core.plot import error_curve_png
from ..vrg_core.profile import profile
from ..vrg_core.regret import schedule_regret_estimate
from .common import CATEGORY, ErrorTableIO, png_to_image, report, stop_if_cancelled
from .guided import check_guidance, run_guided
from .host import model_kind, sigma_range
from .model_identity import fingerprint

def profile_model(model, latents: torch.Tensor, positive, negative, cfg: float, grid: np.ndarray,
                  samples_per_level: int, batch_size: int, seed: int, info: TableInfo) -> ErrorTable:
    """Run `vrg_core.profile` through the host's sampling path (`guided.run_guided`).

    The guider is given a batch-sized slice of the latents (for its memory estimate); the
    whole set is profiled.
    """
    kind = model_kind(model.get_model_object("model_sampling"))
    bar = comfy.utils.ProgressBar(len(grid) * samples_per_level)

    def measure(call, model_k) -> ErrorTable:
        base_model = model_k.inner_model.inner_model
        clean = base_model.process_latent_in(latents).float().cpu()
        return profile(lambda x, sigma, index: call(x, sigma), clean, kind, grid, samples_per_level, batch_size, seed,
                       progress=lambda done, total: bar.update_absolute(done, total), should_stop=stop_if_cancelled,
                       noisy=lambda x0, eps, sigma: base_model.model_sampling.noise_scaling(sigma, eps, x0), info=info)

    shape = latents[: min(batch_size, len(latents))]
    sigmas = torch.tensor(np.append(grid[::-1], 0.0), dtype=torch.float32)
    return run_guided(model, positive, negative, cfg, shape, sigmas, seed, measure)


def check_latents(samples: torch.Tensor, channels: int) -> None:
    """Refuse latents that cannot be the clean image set of a model whose latents have `channels` channels."""
    if samples.ndim < 4 or samples.shape[0] == 0:
        raise VRGError(f"the latent holds no images (shape {tuple(samples.shape)}); connect VAE Encode of your image set")
    if not torch.any(samples):
        raise VRGError("the latent is all zeros (an Empty Latent Image?); profile on clean latents of real images: "
                       "VAE Encode your image set (VRG Demo Image Set for the demo model)")
    if samples.shape[1] != channels:
        raise VRGError(f"the latent has {samples.shape[1]} channels but this model's latents have {channels}; "
                       "VAE Encode the images with this model's VAE")


class VRGProfile(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGProfile",
            display_name="VRG Profile",
            category=CATEGORY,
            description="Measures how wrong the model's prediction is at each noise level (its error table), "
                        "evaluating it exactly as the samplers do on noisy versions of your clean latents. "
                        "Run once per model and guidance setting; save the table and reuse it.",
            inputs=[
                io.Model.Input("model", tooltip="The model to measure, with its LoRAs and patches applied."),
                io.Latent.Input("latent", tooltip="Clean latents of the image set (VAE Encode of images like the "
                                                  "ones you will generate)."),
                io.Int.Input("grid_size", default=48, min=4, max=1000,
                             tooltip="Noise levels to measure, spread evenly in log-SNR over the model's whole "
                                     "noise range (its maximum included)."),
                io.Int.Input("samples_per_level", default=32, min=1, max=100000,
                             tooltip="Noisy samples per level; more gives a smoother table (see the band in the "
                                     "plot)."),
                io.Int.Input("batch_size", default=16, min=1, max=4096,
                             tooltip="Model evaluations per batch (each batch mixes noise levels); lower it if "
                                     "memory runs out."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the profiling noise: the same seed and inputs give the same table."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale to measure at: use the cfg you sample with. Above 1 needs "
                                       "a negative conditioning."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="Prompt conditioning (required by text-to-image models; leave "
                                              "empty only for unconditional models)."),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="Negative conditioning, used when cfg is not 1."),
            ],
            outputs=[ErrorTableIO.Output(display_name="table"), io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, latent, grid_size, samples_per_level, batch_size, seed, cfg, positive=None,
                negative=None) -> io.NodeOutput:
        check_guidance(cfg, negative)
        check_latents(latent["samples"], model.get_model_object("latent_format").latent_channels)
        check_profile_memory(latent["samples"].shape, batch_size)
        started = time.perf_counter()
        ms = model.get_model_object("model_sampling")
        kind = model_kind(ms)
        lo, hi = sigma_range(ms)
        info = TableInfo(model_fingerprint=fingerprint(model), cfg=float(cfg), created=now_iso(),
                         source="ComfyUI VRG Profile")
        table = profile_model(model, latent["samples"], positive, negative, cfg,
                              noise_level_grid(lo, hi, grid_size, kind), samples_per_level, batch_size, seed, info)
        plot = png_to_image(error_curve_png(table))
        text = (f"{kind.label} model, sigma {lo:.4g}..{hi:.4g}: {grid_size} levels x {samples_per_level} samples "
                f"on {table.info.dataset_size} latents, cfg {cfg:g}, {time.perf_counter() - started:.1f} s")
        try:
            est = schedule_regret_estimate(table)
            text += (f"\nschedule regret (estimate from the standard errors, 10-step VRG schedule): {100 * est.mean:.2f} % "
                     f"(90 % of draws below {100 * est.high:.2f} %)"
                     + ("; raise samples_per_level to lower it" if est.high > 0.005 else ""))
        except VRGError as e:
            text += f"\nschedule regret: not estimated ({e})"
        return io.NodeOutput(table, plot, ui=report(cls, text, panel=True, table_sigmas=table.sigmas.tolist(),
                                                    table_error=table.mean_mse.tolist()))


NODES = [VRGProfile]
