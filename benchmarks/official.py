"""Official-format ᾱ trajectories, made as the official VRG code's inputs are.

The official trajectories come from DPM-Solver's `NoiseScheduleVP('discrete')` on the
DDPM linear β schedule (1e-4 → 0.02, 1000 steps): time t ∈ [1/1000, 1] maps to
log α_t by linear interpolation over the training timesteps (t_i = (i + 1)/1000), and
`get_time_steps(skip_type, t_T=1, t_0=1/1000, N)` spaces N + 1 times uniformly in t
(`time_uniform`), in √t (`time_quadratic`) or in log-SNR λ (`logSNR`). The file lists ᾱ
clean→noisy; its first value (t_0, "timestep 0") is dropped by the official optimiser, as
`official_trajectory_from_text` does. Computed in float64 here; the reference 10-step
quadratic file agrees to 2e-6 in ᾱ (it was written from float32 arithmetic).
"""

from __future__ import annotations

import numpy as np

SPACINGS: tuple[str, ...] = ("time_uniform", "time_quadratic", "logSNR")
_TRAIN_STEPS = 1000


def _log_alpha_table() -> tuple[np.ndarray, np.ndarray]:
    betas = np.linspace(1e-4, 0.02, _TRAIN_STEPS)
    log_alpha = 0.5 * np.cumsum(np.log1p(-betas))
    t = np.linspace(0.0, 1.0, _TRAIN_STEPS + 1)[1:]
    return t, log_alpha


def official_alpha_bars(steps: int, spacing: str) -> np.ndarray:
    """The official trajectory file's N + 1 values of ᾱ, clean→noisy (timestep 0 first)."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing {spacing!r} is not one of {SPACINGS}")
    t_arr, la_arr = _log_alpha_table()
    t_T, t_0 = 1.0, 1.0 / _TRAIN_STEPS

    def log_alpha(t):
        return np.interp(t, t_arr, la_arr)

    def lam(t):
        la = log_alpha(t)
        return la - 0.5 * np.log(-np.expm1(2.0 * la))

    if spacing == "time_uniform":
        t = np.linspace(t_T, t_0, steps + 1)
    elif spacing == "time_quadratic":
        t = np.linspace(t_T**0.5, t_0**0.5, steps + 1) ** 2
    else:
        lam_steps = np.linspace(lam(t_T), lam(t_0), steps + 1)
        la = -0.5 * np.logaddexp(0.0, -2.0 * lam_steps)
        t = np.interp(la, la_arr[::-1], t_arr[::-1])
    return np.exp(2.0 * log_alpha(t))[::-1]


def official_trajectory(steps: int, spacing: str) -> np.ndarray:
    """σ schedule (descending, ending at 0) of the official trajectory, as the optimiser reads it."""
    ab = official_alpha_bars(steps, spacing)[1:]
    return np.append(np.sqrt((1.0 - ab) / ab)[::-1], 0.0)
