"""The two samplers vrg_core runs itself (Euler and DPM-Solver++(2M)): one step as a linear combination.

They serve the teacher, the command line (no host) and the dynamic programme, which proposes
paths with the step of the one closest to the searched sampler (`Sampler.proxy`). Inside
ComfyUI the search checks and refines every schedule with ComfyUI's own sampler function.
σ is descending along a schedule (σ_0 the start, σ_N = 0), in the k-diffusion convention.
"""

from __future__ import annotations

import numpy as np
import torch

PROXIES = ("euler", "dpmpp_2m")


def step_coefficients(proxy: str, sigma_prev, sigma, sigma_next) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c_x, c_D, c_old) of one step x_next = c_x·x + c_D·D(x, σ) + c_old·D_prev of `proxy`.

    The formulas of k-diffusion's (ComfyUI's) `sample_euler` and `sample_dpmpp_2m`. Arrays
    broadcast; `sigma_prev` NaN means "no previous step" (the first step, where DPM++2M is first
    order). A step to σ_next = 0 returns D.
    """
    sp, s, sn = (np.asarray(v, dtype=np.float64) for v in (sigma_prev, sigma, sigma_next))
    ratio = sn / s
    c_x, c_d = ratio, 1.0 - ratio
    c_old = np.zeros(np.broadcast_shapes(sp.shape, s.shape, sn.shape))
    if proxy == "dpmpp_2m":
        second_order = np.isfinite(sp) & (sn > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(sp / s) / np.log(s / sn)  # h_last / h
            half = np.where(second_order, 1.0 / (2.0 * r), 0.0)
        c_old = -c_d * half
        c_d = c_d * (1.0 + half)
    elif proxy != "euler":
        raise ValueError(f"no step formula for {proxy!r}; one of {PROXIES}")
    return np.broadcast_to(c_x, c_old.shape), np.broadcast_to(c_d, c_old.shape), c_old


def run_steps(proxy: str, model, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """`proxy` on `sigmas` from `x`, with k-diffusion's model call `model(x, σ·ones(B))`."""
    s = sigmas.double().numpy()
    coefficients = np.stack(step_coefficients(proxy, np.r_[np.nan, s[:-2]], s[:-1], s[1:]), axis=1).tolist()
    old = None
    for k, (c_x, c_d, c_old) in enumerate(coefficients):
        d = model(x, x.new_full((x.shape[0],), float(s[k])))
        x = c_x * x + c_d * d + (c_old * old if c_old else 0.0)
        old = d
    return x


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler, as a k-diffusion sampler function."""
    return run_steps("euler", model, x, sigmas)


def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M), as a k-diffusion sampler function."""
    return run_steps("dpmpp_2m", model, x, sigmas)
