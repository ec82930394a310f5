"""What profiling and the VRG+ search hold in memory, and a refusal (with the fix) before they would not fit.

The estimates count what the engine itself keeps on the CPU, per latent element E (channels x
frames x height x width of one sample); the model's own activations are the host's to plan
(ComfyUI's memory management sizes them for the batch it is given).

* Profile, one batch of B at a time: the clean latents, the noise, the noisy input, the
  prediction (float32), their float64 copies and the error: 80 B bytes per element (measured
  71-80 at Flux and Wan sizes), plus the image set itself (M latents, float32).
* Search: a teacher batch keeps its 2G states and predictions as float64 vectors, and the first
  batch is kept for the response measurement, so two such blocks: 2 x 2G x B x 8 = 32 G B bytes
  per element, 34 G B with the temporaries (measured 33.5 G at Flux and Wan sizes); plus the
  starting and final states of every sample (S x 2 x 4 bytes).

`benchmarks/family_scale.py` measures these on a stand-in model at SDXL, Flux and Wan sizes.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from .errors import VRGError

GIB = 2**30
PROFILE_BYTES_PER_ELEMENT = 80  # per batch sample
SEARCH_BYTES_PER_ELEMENT_AND_GRID_POINT = 34  # per batch sample, per teacher grid point
SAMPLE_BYTES_PER_ELEMENT = 8  # start and final state of every search sample (float32)
HEADROOM = 0.8  # leave a fifth of the available memory to the host, the model and everything else


def latent_elements(shape: Sequence[int]) -> int:
    """Elements of one sample of a latent batch of `shape` (batch first)."""
    return int(math.prod(shape[1:]))


def profile_bytes(elements: int, batch_size: int, dataset_size: int) -> int:
    return elements * (PROFILE_BYTES_PER_ELEMENT * batch_size + 4 * dataset_size)


def search_bytes(elements: int, batch_size: int, grid_points: int, samples: int) -> int:
    return elements * (SEARCH_BYTES_PER_ELEMENT_AND_GRID_POINT * grid_points * batch_size
                       + SAMPLE_BYTES_PER_ELEMENT * samples)


def available_bytes() -> int | None:
    """Memory the system can still give this process (Linux MemAvailable; psutil elsewhere); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - unknown: no check
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def check_profile_memory(shape: Sequence[int], batch_size: int, available: int | None = None) -> int:
    """Refuse a profile whose batches would not fit in memory; the estimated bytes otherwise."""
    elements, dataset = latent_elements(shape), int(shape[0])
    need = profile_bytes(elements, batch_size, dataset)
    budget = (available_bytes() if available is None else available)
    if budget is None or need <= HEADROOM * budget:
        return need
    fits = int((HEADROOM * budget / elements - 4 * dataset) // PROFILE_BYTES_PER_ELEMENT)
    fix = (f"lower batch_size to {fits}" if fits >= 1 else
           f"profile on fewer or smaller latents (the {dataset} latents alone take {_gib(4 * elements * dataset)})")
    raise VRGError(f"profiling {dataset} latents of {elements:,} elements in batches of {batch_size} needs about "
                   f"{_gib(need)} of memory but {_gib(budget)} is available; {fix}")


def check_search_memory(shape: Sequence[int], batch_size: int, grid_points: int, samples: int,
                        available: int | None = None) -> int:
    """Refuse a VRG+ search whose teacher would not fit in memory; the estimated bytes otherwise.

    `shape`: the latent the search samples (its batch is ignored); `grid_points` and `samples`: the
    teacher grid and trajectories of the search's plan (`vrg_core.search.plan_for`). VRG Search
    Schedule calls it before any model call.
    """
    elements = latent_elements(shape)
    need = search_bytes(elements, batch_size, grid_points, samples)
    budget = (available_bytes() if available is None else available)
    if budget is None or need <= HEADROOM * budget:
        return need
    per_batch = SEARCH_BYTES_PER_ELEMENT_AND_GRID_POINT * grid_points * elements
    fits = int((HEADROOM * budget - SAMPLE_BYTES_PER_ELEMENT * samples * elements) // per_batch)
    fix = (f"lower batch_size to {fits}" if fits >= 1 else
           f"even batch_size 1 needs {_gib(search_bytes(elements, 1, grid_points, samples))}: search at a smaller "
           "latent (fewer frames or pixels) or on a machine with more memory")
    raise VRGError(f"the schedule search at this latent size ({elements:,} elements a sample, a {grid_points}-point "
                   f"teacher grid) in batches of {batch_size} needs about {_gib(need)} of memory but {_gib(budget)} "
                   f"is available; {fix}")
