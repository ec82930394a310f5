"""Method ``paper``: the official reparameterisation, for reproduction only.

A 1000→2000→2000→N linear network on a fixed input whose tanh output scales the box of α
(not log α) around its base, trained by SGD with momentum on the loss of `problem`; float64
throughout.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import Cancelled
from .problem import Problem


class _PaperReparam(torch.nn.Module):
    """The official network: a fixed input of 0.5s through three linear layers, tanh-scaled box."""

    def __init__(self, base_alpha: np.ndarray, radius: np.ndarray):
        super().__init__()
        self.register_buffer("base", torch.tensor(base_alpha, dtype=torch.float64))
        self.register_buffer("radius", torch.tensor(radius, dtype=torch.float64))
        self.register_buffer("seed_input", torch.full((1000,), 0.5, dtype=torch.float64))
        n = len(base_alpha)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(1000, 2000, dtype=torch.float64),
            torch.nn.Linear(2000, 2000, dtype=torch.float64),
            torch.nn.Linear(2000, n, dtype=torch.float64),
        )

    def forward(self) -> torch.Tensor:
        return self.base + torch.tanh(self.layers(self.seed_input)) * self.radius

    def squash_weight_grads(self) -> None:
        """The official gradient clip: tanh applied twice to each weight gradient."""
        for layer in self.layers:
            if layer.weight.grad is not None:
                layer.weight.grad = torch.tanh(torch.tanh(layer.weight.grad))


class _LossOfAlpha(torch.autograd.Function):
    """Bridges the numpy objective into autograd: loss(α) with its analytic gradient."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, problem: Problem) -> torch.Tensor:  # type: ignore[override]
        a = alpha.detach().numpy()
        loss, grad_log = problem.value_and_grad(np.log(a))
        ctx.save_for_backward(torch.from_numpy(grad_log / a))
        return torch.tensor(loss, dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None


def solve_paper(
    p: Problem, gamma: float, epochs: int, lr: float, seed: int, should_stop: Callable[[], bool] | None,
) -> tuple[np.ndarray, str]:
    """The official SGD (momentum 0.9, learning rate `lr`, torch seed `seed`) for `epochs` epochs.

    The loss is read every 100 epochs and at the last; the best read wins. `should_stop` is polled
    each epoch (Cancelled when it returns True). Returns log α and a status line."""
    alpha = np.exp(p.base_log_alpha)
    radius = np.minimum(gamma, np.minimum(alpha, 1.0 - alpha))
    torch.manual_seed(seed)
    net = _PaperReparam(alpha, radius)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    best_loss, best = np.inf, alpha
    for epoch in range(1, epochs + 1):
        if should_stop is not None and should_stop():
            raise Cancelled("optimisation cancelled")
        opt.zero_grad()
        a = net()
        loss = _LossOfAlpha.apply(a, p)
        loss.backward()
        net.squash_weight_grads()
        opt.step()
        if (epoch % 100 == 0 or epoch == epochs) and loss.item() < best_loss:
            best_loss, best = loss.item(), a.detach().numpy().copy()
    return np.log(best), f"paper SGD: {epochs} epochs, best loss {best_loss:.7g}"
