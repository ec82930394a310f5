"""VRG Load Image Set: a folder of images under ComfyUI's input directory as one IMAGE batch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import folder_paths
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from .common import CATEGORY

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def image_folder(folder: str) -> Path:
    """`folder` under the input directory, refusing anything outside it."""
    root = Path(folder_paths.get_input_directory()).resolve()
    path = (root / folder).resolve()
    if path != root and root not in path.parents:
        raise VRGError(f"folder {folder!r} is outside ComfyUI's input directory; pick one of its subfolders")
    if not path.is_dir():
        raise VRGError(f"folder {folder!r} does not exist in ComfyUI's input directory: create input/{folder} and put "
                       "a few dozen of your images (png, jpg, webp) in it, or name an existing subfolder")
    return path


def image_files(folder: str) -> list[Path]:
    return sorted(p for p in image_folder(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: Path, width: int, height: int) -> torch.Tensor:
    """One image, upright, RGB, scaled to cover width x height and centre-cropped: [H, W, 3] in 0..1."""
    try:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise VRGError(f"image {path.name!r} cannot be read ({e}); remove it from the folder") from None
    fitted = ImageOps.fit(rgb, (width, height), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(fitted, dtype=np.float32) / 255.0)


class VRGLoadImageSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGLoadImageSet",
            display_name="VRG Load Image Set",
            category=CATEGORY,
            description="Loads the images of a folder in ComfyUI's input directory as one batch (a seeded random "
                        "choice of them, all resized and centre-cropped to one size), e.g. to VAE Encode for "
                        "VRG Profile.",
            inputs=[
                io.Combo.Input("folder", options=folder_paths.get_input_subfolders(),
                               tooltip="A folder inside ComfyUI's input directory."),
                io.Int.Input("count", default=32, min=1, max=100000,
                             tooltip="How many images to load at most."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the random choice and order of the images."),
                io.Int.Input("width", default=512, min=8, max=16384, step=8, tooltip="Width of every image."),
                io.Int.Input("height", default=512, min=8, max=16384, step=8, tooltip="Height of every image."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def fingerprint_inputs(cls, folder, count, seed, width, height):
        return [(p.name, p.stat().st_mtime_ns) for p in image_files(folder)]

    @classmethod
    def execute(cls, folder, count, seed, width, height) -> io.NodeOutput:
        files = image_files(folder)
        if not files:
            raise VRGError(f"folder {folder!r} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put your image set "
                           "in it or pick another folder")
        random.Random(seed).shuffle(files)
        return io.NodeOutput(torch.stack([load_image(p, width, height) for p in files[:count]]))


NODES = [VRGLoadImageSet]
