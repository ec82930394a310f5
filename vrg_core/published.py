"""The published fixed schedules ComfyUI ships as scheduler nodes, as data, so that vrg_core measures them too.

The node reads these schedules from ComfyUI (`nodes/host.py`: `SHIPPED_TABLES`); the command line and the
demo cannot import ComfyUI, so the papers' published numbers are here, under the same names, with the rule
each applies at other step counts (tests/comfy checks that both give the same σ at every step count 2–50):

* ``ays_sd1``, ``ays_sdxl`` — Align Your Steps: A. Sabour, S. Fidler, K. Kreis, "Align Your Steps: Optimizing
  Sampling Schedules in Diffusion Models", arXiv 2404.14507. Their 10-step schedules for SD1.5 and SDXL;
  other step counts: the 10-step schedule interpolated log-linearly (`loglinear`).
* ``gits`` — D. Chen et al., "On the Trajectory Regularity of ODE-based Diffusion Sampling", arXiv 2405.11326.
  Their SD1.5 schedules at coefficient 1.20, one per step count 2–20; other step counts: the 20-step one
  interpolated log-linearly.
* ``oss_flux``, ``oss_wan`` — Optimal Stepped Sampling: J. Pei et al., "Optimal Stepsize for Diffusion
  Sampling", arXiv 2503.21774. Their flow schedules (σ = t in [0, 1]) for FLUX (10 steps) and Wan (20 steps);
  other step counts: interpolated log-linearly.

The EPS-process tables (σ of SD1.5's discrete schedule, 0.0292–14.61) are offered for every non-flow model
kind (EPS, v-prediction, EDM), the OSS tables for flow models, as the node offers them. A schedule here is
at full denoise: σ descending, a float64 numpy array of `steps + 1` levels whose last, the table's least
level, is replaced by 0.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import VRGError
from .parameterization import ModelKind

# Align Your Steps, 10 steps (11 levels), σ descending.
AYS_SD1 = (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
           0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582)
AYS_SDXL = (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
            0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582)

# GITS at coefficient 1.20: {steps: σ descending, steps + 1 levels}.
GITS_120 = {
    2: (14.61464119, 0.803307, 0.02916753),
    3: (14.61464119, 1.56271636, 0.52423614, 0.02916753),
    4: (14.61464119, 2.36326075, 0.92192322, 0.36617002, 0.02916753),
    5: (14.61464119, 2.84484982, 1.24153244, 0.59516323, 0.25053367, 0.02916753),
    6: (14.61464119, 5.85520077, 2.05039096, 0.95350921, 0.45573691, 0.17026083, 0.02916753),
    7: (14.61464119, 5.85520077, 2.45070267, 1.24153244, 0.64427125, 0.29807833, 0.09824532, 0.02916753),
    8: (14.61464119, 5.85520077, 2.45070267, 1.36964464, 0.803307, 0.45573691, 0.25053367, 0.09824532, 0.02916753),
    9: (14.61464119, 5.85520077, 2.84484982, 1.61558151, 0.95350921, 0.59516323, 0.36617002, 0.19894916, 0.09824532, 0.02916753),
    10: (14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048, 0.50118381, 0.32104823, 0.19894916, 0.09824532,
        0.02916753),
    11: (14.61464119, 5.85520077, 2.95596409, 1.84880662, 1.24153244, 0.83188516, 0.59516323, 0.41087446, 0.27464288, 0.17026083,
        0.09824532, 0.02916753),
    12: (14.61464119, 5.85520077, 3.07277966, 1.98035145, 1.36964464, 0.95350921, 0.69515091, 0.50118381, 0.36617002, 0.25053367,
        0.17026083, 0.09824532, 0.02916753),
    13: (14.61464119, 6.77309084, 3.46139455, 2.36326075, 1.56271636, 1.08895338, 0.803307, 0.59516323, 0.45573691, 0.34370604,
        0.25053367, 0.17026083, 0.09824532, 0.02916753),
    14: (14.61464119, 6.77309084, 3.46139455, 2.45070267, 1.61558151, 1.162866, 0.86115354, 0.64427125, 0.50118381, 0.38853383,
        0.29807833, 0.22545385, 0.17026083, 0.09824532, 0.02916753),
    15: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.12350607, 1.51179266, 1.08895338, 0.83188516, 0.64427125, 0.50118381,
        0.38853383, 0.29807833, 0.22545385, 0.17026083, 0.09824532, 0.02916753),
    16: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.12350607, 1.51179266, 1.08895338, 0.83188516, 0.64427125, 0.50118381,
        0.41087446, 0.32104823, 0.25053367, 0.19894916, 0.13792117, 0.09824532, 0.02916753),
    17: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.12350607, 1.51179266, 1.08895338, 0.83188516, 0.64427125, 0.50118381,
        0.41087446, 0.34370604, 0.27464288, 0.22545385, 0.17026083, 0.13792117, 0.09824532, 0.02916753),
    18: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.19988537, 1.61558151, 1.20157266, 0.92192322, 0.72133851, 0.57119018,
        0.45573691, 0.36617002, 0.29807833, 0.25053367, 0.19894916, 0.17026083, 0.13792117, 0.09824532, 0.02916753),
    19: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.19988537, 1.61558151, 1.24153244, 0.95350921, 0.74807048, 0.59516323,
        0.4783645, 0.38853383, 0.32104823, 0.27464288, 0.22545385, 0.19894916, 0.17026083, 0.13792117, 0.09824532, 0.02916753),
    20: (14.61464119, 7.49001646, 4.65472794, 3.07277966, 2.19988537, 1.61558151, 1.24153244, 0.95350921, 0.74807048, 0.59516323,
        0.50118381, 0.41087446, 0.34370604, 0.29807833, 0.25053367, 0.22545385, 0.19894916, 0.17026083, 0.13792117, 0.09824532,
        0.02916753),
}

# Optimal Stepped Sampling: FLUX 10 steps, Wan 20 steps; flow σ (t) descending.
OSS_FLUX = (0.9968, 0.9886, 0.9819, 0.975, 0.966, 0.9471, 0.9158, 0.8287, 0.5512, 0.2808, 0.001)
OSS_WAN = (1.0, 0.997, 0.995, 0.993, 0.991, 0.989, 0.987, 0.985, 0.98, 0.975, 0.973, 0.968, 0.96, 0.946, 0.927, 0.902,
           0.864, 0.776, 0.539, 0.208, 0.001)


def loglinear(levels: Sequence[float], steps: int) -> np.ndarray:
    """`levels` (σ > 0, descending) resampled to `steps + 1` levels: log σ interpolated linearly between the
    levels, placed evenly from the first to the last (the first and last are kept). float64."""
    log = np.log(np.asarray(levels, dtype=np.float64))
    return np.exp(np.interp(np.linspace(0.0, 1.0, steps + 1), np.linspace(0.0, 1.0, len(log)), log))


def _table_or_loglinear(levels: Sequence[float]) -> Callable[[int], np.ndarray]:
    """The published levels at their own step count, else `loglinear` of them."""
    return lambda steps: np.array(levels, dtype=np.float64) if steps + 1 == len(levels) else loglinear(levels, steps)


def _gits(steps: int) -> np.ndarray:
    """The published row for `steps` (2–20), else the 20-step row interpolated log-linearly."""
    row = GITS_120.get(steps)
    return np.array(row, dtype=np.float64) if row is not None else loglinear(GITS_120[max(GITS_120)], steps)


# name -> (noise process it is for, levels at a step count before the last is set to 0); names as the node's
PUBLISHED: dict[str, tuple[str, Callable[[int], np.ndarray]]] = {
    "ays_sd1": ("eps", _table_or_loglinear(AYS_SD1)),
    "ays_sdxl": ("eps", _table_or_loglinear(AYS_SDXL)),
    "gits": ("eps", _gits),
    "oss_flux": ("flow", _table_or_loglinear(OSS_FLUX)),
    "oss_wan": ("flow", _table_or_loglinear(OSS_WAN)),
}


def published_schedule(name: str, steps: int) -> np.ndarray:
    """The published schedule `name` at `steps` steps, full denoise: σ descending, float64, `steps + 1` levels
    ending at 0. VRGError for an unknown name or fewer than 1 step."""
    if name not in PUBLISHED:
        raise VRGError(f"no published schedule {name!r}; use one of: {', '.join(PUBLISHED)}")
    if steps < 1:
        raise VRGError(f"the published schedule {name} needs at least 1 step, got {steps}")
    sigmas = PUBLISHED[name][1](int(steps))
    sigmas[-1] = 0.0
    return sigmas


def published_schedules(kind: ModelKind | str, steps: int) -> dict[str, np.ndarray]:
    """{name: `published_schedule(name, steps)`} of the tables for `kind`'s noise process: AYS SD1, AYS SDXL
    and GITS for EPS, v-prediction and EDM; OSS FLUX and Wan for flow (CONST)."""
    process = "flow" if ModelKind.parse(kind).is_flow else "eps"
    return {name: published_schedule(name, steps) for name, (used, _) in PUBLISHED.items() if used == process}
