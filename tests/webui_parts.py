"""Parts the webui tests (A1111: test_a1111.py, Forge: test_forge.py) share: a small checkpoint and error tables."""

import dataclasses
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.fingerprint import fingerprint_weights
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.schedule_file import ScheduleFile, save_schedule
from vrg_core.table_io import save_table

SD15_ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0).float()


class TinyUNet(torch.nn.Module):
    """A diffusion model's layers as an LDM UNet names them (`input_blocks.0.0`, …), small."""

    def __init__(self):
        super().__init__()
        self.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1))])
        self.middle_block = torch.nn.Sequential(torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 8))
        self.out = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 3, padding=1))


def checkpoint(folder: Path, name: str = "sd15", seed: int = 0) -> Path:
    """A checkpoint's diffusion-model weights as a safetensors file (names under `model.diffusion_model.` in a full
    checkpoint; ComfyUI's node pack fingerprints them under these names)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = TinyUNet()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path))
    return path


def write_table(folder: Path, name: str, kind: ModelKind = ModelKind.EPS, made_on: Path | None = None) -> Path:
    """An error table over SD 1.5's noise range, shaped like a real model's (largest at low noise), recording the
    fingerprint of checkpoint `made_on` (as ComfyUI's VRG Profile records the model's) or none."""
    sigmas_sd15 = ((1 - SD15_ALPHAS_CUMPROD.double()) / SD15_ALPHAS_CUMPROD.double()).sqrt()
    lo, hi = (float(sigmas_sd15[0]), float(sigmas_sd15[-1])) if kind is not ModelKind.CONST else (1e-4, 1.0)
    grid = noise_level_grid(lo, hi, 40, kind)
    table = ErrorTable.from_mean_error(kind, grid, 0.02 + 1.0 / (1.0 + 4.0 * grid**2))
    if made_on is not None:
        table = dataclasses.replace(table, info=dataclasses.replace(table.info, model_fingerprint=fingerprint_of(made_on)))
    return save_table(table, folder / f"{name}.safetensors")


def fingerprint_of(weights: Path) -> str:
    """The fingerprint ComfyUI's node pack records for a diffusion model holding checkpoint `weights`."""
    return fingerprint_weights(safetensors.torch.load_file(str(weights))).value


def write_schedule(folder: Path, name: str, weights: Path, kind: ModelKind = ModelKind.EPS) -> ScheduleFile:
    """A VRG+ schedule file for 4-8 steps of euler at cfg 7, searched (as it says) on checkpoint `weights`."""
    top = float(((1 - SD15_ALPHAS_CUMPROD[-1]) / SD15_ALPHAS_CUMPROD[-1]).sqrt()) if kind is not ModelKind.CONST else 1.0
    schedules = {n: np.append(np.geomspace(top, top / 300, n), 0.0) for n in range(4, 9)}
    schedule = ScheduleFile(fingerprint_of(weights), kind, "euler", 7.0, schedules, "test")
    save_schedule(schedule, folder / f"{name}.json")
    return schedule
