"""GMM testbed: a low-dimensional Gaussian mixture whose exact denoiser and metrics are known.

* `GaussianMixture`: data x0 ~ Σ_k π_k N(μ_k, Σ_k) in `dim` dimensions; on SD1.5's discrete
  (EPS) noise schedule x = x0 + σ ε, the exact denoiser D*(x, σ) = E[x0 | x] is closed-form.
* `train_denoiser`: a small MLP ε-predictor trained on a *finite* sample of the mixture (as SD
  models are trained: uniform timesteps of the 1 000-step table), so it has real prediction error.
* Exact metrics against the true distribution: MMD² with a Gaussian kernel (the mixture's terms
  in closed form, only the samples' term estimated) and the Fréchet distance to the mixture's
  exact mean and covariance.
* `trajectory_study`: the accumulated error of real trajectories. From the same noise, the same
  sampler and schedule run with the learned model and with the exact denoiser; their final
  difference is the accumulated effect of prediction error (discretisation is shared), compared
  with the CPE that VRG minimises — with w(σ) from the profiler (the learned model's error
  against x0, which includes the irreducible Bayes error) and with the model-only error
  E‖D̂ − D*‖²/(σ²·dim), which only this testbed can measure.

    python -m benchmarks.gmm [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import torch
from torch import nn

from vrg_core.error_table import ErrorTable, TableInfo
from vrg_core.objective import cumulative_error
from vrg_core.parameterization import ModelKind, discrete_vp_sigmas, noise_level_grid
from vrg_core.profile import profile

SIGMA_TABLE = torch.from_numpy(discrete_vp_sigmas()).float()  # SD1.5, ascending


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """Weights [K], means [K, d], covariance eigen-decompositions (values [K, d], vectors [K, d, d]); float64."""

    weights: torch.Tensor
    means: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def covs(self) -> torch.Tensor:
        return self.eigvecs @ torch.diag_embed(self.eigvals) @ self.eigvecs.transpose(1, 2)

    @classmethod
    def random(cls, dim: int = 4, components: int = 8, seed: int = 0) -> "GaussianMixture":
        """Components on a shell of radius ~1.2, each an anisotropic Gaussian with std 0.03–0.3 per axis."""
        g = torch.Generator().manual_seed(seed)
        d = torch.randn(components, dim, generator=g, dtype=torch.float64)
        radius = 0.8 + 0.8 * torch.rand(components, 1, generator=g, dtype=torch.float64)
        means = d / d.norm(dim=1, keepdim=True) * radius
        stds = torch.exp(math.log(0.03) + (math.log(0.3) - math.log(0.03)) * torch.rand(components, dim, generator=g,
                                                                                          dtype=torch.float64))
        q, _ = torch.linalg.qr(torch.randn(components, dim, dim, generator=g, dtype=torch.float64))
        w = 0.5 + torch.rand(components, generator=g, dtype=torch.float64)
        return cls(w / w.sum(), means, stds**2, q)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + torch.einsum("nij,nj->ni", self.eigvecs[k], z * self.eigvals[k].sqrt())

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean [d] and covariance [d, d]."""
        mean = self.weights @ self.means
        centred = self.means - mean
        cov = torch.einsum("k,kij->ij", self.weights, self.covs + centred[:, :, None] * centred[:, None, :])
        return mean, cov

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact E[x0 | x0 + σ ε = x] for x [B, d] and σ (scalar or [B]); float64 inside, x's dtype out."""
        xd = x.double()
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(len(x))[:, None, None] ** 2  # [B,1,1]
        y = torch.einsum("kji,bkj->bki", self.eigvecs, xd[:, None, :] - self.means[None])  # coordinates [B,K,d]
        var = self.eigvals[None] + s2  # [B,K,d]
        logp = torch.log(self.weights)[None] - 0.5 * (y**2 / var + torch.log(var)).sum(-1)
        r = torch.softmax(logp, dim=1)  # [B,K]
        post = self.means[None] + torch.einsum("kij,bkj->bki", self.eigvecs, self.eigvals[None] / var * y)
        return (r[:, :, None] * post).sum(1).to(x.dtype)


# ---- exact metrics ---------------------------------------------------------------------------
def fd_exact(samples: torch.Tensor, gmm: GaussianMixture) -> float:
    """Fréchet distance between the samples' mean/covariance and the mixture's exact ones."""
    from vrg_core.demo.metric import FeatureStats, frechet_distance_from_stats, feature_stats

    mean, cov = gmm.moments()
    return frechet_distance_from_stats(feature_stats(samples.double().numpy()), FeatureStats(mean.numpy(), cov.numpy(), 0))


def _gauss_expect(diff: torch.Tensor, cov: torch.Tensor, h: float) -> torch.Tensor:
    """E k(x, y) for y ~ N(μ, cov), k = exp(−‖x − y‖²/2h²), given diff = x − μ [..., d] and one cov [d, d]."""
    d = cov.shape[-1]
    c = cov + h * h * torch.eye(d, dtype=cov.dtype)
    inv = torch.linalg.inv(c)
    return h**d / torch.sqrt(torch.linalg.det(c)) * torch.exp(-0.5 * ((diff @ inv) * diff).sum(-1))


def mmd2_exact(samples: torch.Tensor, gmm: GaussianMixture, bandwidth: float = 0.25, chunk: int = 2048) -> float:
    """MMD² between the samples and the mixture (Gaussian kernel): E_qq k (unbiased) − 2 E_qp k + E_pp k.

    E_qp and E_pp are closed-form for a Gaussian mixture; only E_qq is estimated from samples.
    """
    x = samples.double()
    n, h = len(x), bandwidth
    covs = gmm.covs
    e_pp = sum(float(gmm.weights[a] * gmm.weights[b] * _gauss_expect(gmm.means[a] - gmm.means[b], covs[a] + covs[b], h))
               for a in range(len(covs)) for b in range(len(covs)))
    e_qp = sum(gmm.weights[k] * _gauss_expect(x - gmm.means[k], covs[k], h) for k in range(len(covs)))
    xf = x.float()
    total = 0.0
    for i in range(0, n, chunk):
        dist2 = torch.cdist(xf[i:i + chunk], xf).double() ** 2
        total += float(torch.exp(-dist2 / (2 * h * h)).sum())
    e_qq = (total - n) / (n * (n - 1))
    return e_qq - 2.0 * float(e_qp.mean()) + e_pp


# ---- the learned denoiser ------------------------------------------------------------------------
class MLPDenoiser(nn.Module):
    """ε-prediction MLP on SD1.5's discrete schedule: input x/√(σ²+1) and an embedding of log σ."""

    def __init__(self, dim: int, width: int = 128, depth: int = 3, embed: int = 16):
        super().__init__()
        self.embed = embed
        layers: list[nn.Module] = [nn.Linear(dim + embed, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def eps(self, x_in: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        freqs = torch.arange(self.embed // 2, dtype=torch.float32)
        arg = torch.log(sigma.float())[:, None] * (1.5**freqs)[None]
        return self.net(torch.cat([x_in, torch.cos(arg), torch.sin(arg)], dim=1))

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(len(x))
        xf = x.float()
        eps = self.eps(xf / torch.sqrt(sigma[:, None] ** 2 + 1), sigma)
        return (xf - sigma[:, None] * eps).to(x.dtype)


def train_denoiser(data: torch.Tensor, steps: int = 3000, batch: int = 512, seed: int = 0, lr: float = 2e-3) -> MLPDenoiser:
    """Train on the finite set `data` [N, d] with uniform timesteps of the 1 000-step table (deterministic)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = MLPDenoiser(data.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    x_all = data.float()
    for _ in range(steps):
        x0 = x_all[torch.randint(0, len(x_all), (batch,), generator=g)]
        sigma = SIGMA_TABLE[torch.randint(0, len(SIGMA_TABLE), (batch,), generator=g)]
        eps = torch.randn(x0.shape, generator=g)
        pred = net.eps((x0 + sigma[:, None] * eps) / torch.sqrt(sigma[:, None] ** 2 + 1), sigma)
        loss = ((pred - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval().requires_grad_(False)


@dataclasses.dataclass
class Testbed:
    gmm: GaussianMixture
    model: MLPDenoiser
    train: torch.Tensor  # the finite training set
    heldout: torch.Tensor  # fresh samples of the true distribution (for profiling)
    seconds: float


def build_testbed(quick: bool = False, dim: int = 4, components: int = 8, train_size: int = 2000) -> Testbed:
    t0 = time.perf_counter()
    gmm = GaussianMixture.random(dim, components, seed=0)
    g = torch.Generator().manual_seed(1)
    train = gmm.sample(train_size, g)
    heldout = gmm.sample(2000, g)
    model = train_denoiser(train, steps=600 if quick else 4000)
    return Testbed(gmm, model, train, heldout, time.perf_counter() - t0)


# ---- error tables and the trajectory study ---------------------------------------------------------
SD15_SIGMA_MIN, SD15_SIGMA_MAX = float(SIGMA_TABLE[0]), float(SIGMA_TABLE[-1])


def gmm_table(denoise, x0: torch.Tensor, grid: int = 48, samples: int = 256, seed: int = 0, source: str = "") -> ErrorTable:
    """The profiler's error table of `denoise(x, σ)` on clean points x0 [M, d]."""
    sigmas = noise_level_grid(SD15_SIGMA_MIN, SD15_SIGMA_MAX, grid, ModelKind.EPS)
    return profile(lambda x, s, i: denoise(x, s), x0.float(), ModelKind.EPS, sigmas, samples, batch_size=4096, seed=seed,
                   info=TableInfo(source=source))


def model_only_table(tb: Testbed, grid: int = 48, samples: int = 256, seed: int = 0) -> ErrorTable:
    """w_model(σ) = E‖D̂ − D*‖²/(σ²·dim): the learned model's deviation from the exact denoiser.

    Uses the engine's profiler with denoise' = D̂ − D* + x0, so that D' − x0 = D̂ − D*.
    """
    x0 = tb.heldout.float()
    sigmas = noise_level_grid(SD15_SIGMA_MIN, SD15_SIGMA_MAX, grid, ModelKind.EPS)
    return profile(lambda x, s, i: tb.model.denoise(x, s) - tb.gmm.denoise(x, s) + x0[i], x0, ModelKind.EPS, sigmas,
                   samples, batch_size=4096, seed=seed, info=TableInfo(source="gmm model-only"))


def per_dim_sq(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean())


def trajectory_study(backend, tb: Testbed, schedules: dict[str, torch.Tensor], table: ErrorTable,
                     model_table: ErrorTable, sampler: str = "euler", n: int = 4000, seed: int = 0,
                     reference_steps: int = 500) -> list[dict]:
    """Per schedule: measured accumulated prediction error vs CPE (table) and CPE (model-only).

    Returns rows {name, pred_err, disc_err, total_err, cpe_table, cpe_model}; errors are per-dimension
    mean squares of final samples from the same noise: learned vs exact model on this schedule
    (pred_err), exact model on this schedule vs exact model on a fine reference (disc_err), and
    learned on this schedule vs that reference (total_err).
    """
    from .backend import SD15

    noise = torch.randn(n, tb.gmm.dim, generator=torch.Generator().manual_seed(seed))
    exact = lambda x, s: tb.gmm.denoise(x, s)  # noqa: E731
    ref_sigmas = backend.sigmas(SD15, "karras", reference_steps)
    x_ref = backend.sample("euler", exact, noise, ref_sigmas, SD15, seed) if sampler == "euler_ancestral" else \
        backend.sample(sampler, exact, noise, ref_sigmas, SD15, seed)
    rows = []
    for name, sig in schedules.items():
        x_hat = backend.sample(sampler, tb.model.denoise, noise, sig, SD15, seed)
        x_star = backend.sample(sampler, exact, noise, sig, SD15, seed)
        rows.append({
            "name": name, "pred_err": per_dim_sq(x_hat, x_star), "disc_err": per_dim_sq(x_star, x_ref),
            "total_err": per_dim_sq(x_hat, x_ref), "cpe_table": cumulative_error(sig, table).total,
            "cpe_model": cumulative_error(sig, model_table).total,
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    from .backend import EPS_SCHEDULERS, SD15, Unavailable, load_backend

    ap = argparse.ArgumentParser(prog="python -m benchmarks.gmm", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    backend = load_backend()
    tb = build_testbed(a.quick)
    print(f"GMM testbed: dim {tb.gmm.dim}, {len(tb.gmm.weights)} components, trained in {tb.seconds:.1f} s ({backend.version})")
    table = gmm_table(tb.model.denoise, tb.heldout, source="gmm learned, held-out")
    mtable = model_only_table(tb)
    print("sigma      w(table)   w(model-only)  model/table")
    for s, w, m in zip(table.sigmas[::6], table.mean_mse[::6], mtable.mean_mse[::6]):
        print(f"{s:9.4f} {w:10.4g} {m:12.4g} {m / w:10.3f}")
    schedules = {}
    for sched in EPS_SCHEDULERS:
        for steps in (5, 10, 20):
            try:
                schedules[f"{sched}/{steps}"] = backend.sigmas(SD15, sched, steps)
            except Unavailable:
                pass
    rows = trajectory_study(backend, tb, schedules, table, mtable, n=1000 if a.quick else 4000)
    print(f"{'schedule':<16} {'pred_err':>10} {'CPE model':>10} {'CPE table':>10} {'disc_err':>10} {'total':>10}")
    for r in rows:
        print(f"{r['name']:<16} {r['pred_err']:10.4g} {r['cpe_model']:10.4g} {r['cpe_table']:10.4g} {r['disc_err']:10.4g} "
              f"{r['total_err']:10.4g}")


if __name__ == "__main__":
    main()
