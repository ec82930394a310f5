"""Fréchet distance of demo samples to held-out real digits, in a digit classifier's features.

Like FID, but the features are the 64-d penultimate layer of the bundled `DigitClassifier`
and the reference statistics (mean, covariance of the 1 000 held-out real digits) are stored
inside `digit_classifier.safetensors`, so the metric needs no data set at run time.
Images are [N, 1, 16, 16] in [-1, 1]; FD values are in squared feature units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import torch

from ..errors import VRGError
from .nets import ClassifierConfig, DigitClassifier
from ..fingerprint import model_fingerprint
from .store import WEIGHTS_DIR, load_tensors

CLASSIFIER_PATH = WEIGHTS_DIR / "digit_classifier.safetensors"
STATS_PREFIX = "heldout_stats."


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Mean [F] and covariance [F, F] (float64) of `count` feature vectors."""

    mean: np.ndarray
    cov: np.ndarray
    count: int


@dataclasses.dataclass
class Classifier:
    """The bundled digit classifier (eval mode) with the held-out real-digit feature statistics."""

    net: DigitClassifier
    heldout: FeatureStats
    fingerprint: str


def feature_stats(features: np.ndarray) -> FeatureStats:
    """Mean and (unbiased) covariance of features [N, F], N ≥ 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise VRGError(f"need features of shape [N >= 2, F], got {features.shape}")
    return FeatureStats(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def stats_tensors(stats: FeatureStats) -> dict[str, torch.Tensor]:
    """`stats` as float64 tensors for a weight file."""
    return {STATS_PREFIX + "mean": torch.from_numpy(stats.mean), STATS_PREFIX + "cov": torch.from_numpy(stats.cov),
            STATS_PREFIX + "count": torch.tensor(stats.count)}


def load_classifier() -> Classifier:
    """The bundled classifier and its held-out feature statistics."""
    tensors, info = load_tensors(CLASSIFIER_PATH)
    stats = FeatureStats(tensors.pop(STATS_PREFIX + "mean").double().numpy(),
                         tensors.pop(STATS_PREFIX + "cov").double().numpy(),
                         int(tensors.pop(STATS_PREFIX + "count")))
    net = DigitClassifier(ClassifierConfig.from_dict(info["config"]))
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    return Classifier(net.eval().requires_grad_(False), stats, model_fingerprint(net.state_dict()))


@torch.no_grad()
def classifier_features(net: DigitClassifier, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Penultimate features [N, F] float64 of images [N, 1, 16, 16] in [-1, 1] under `net` (eval mode)."""
    images = images.float()
    parts = [net.features(images[i:i + batch_size])[0] for i in range(0, len(images), batch_size)]
    return torch.cat(parts).double().numpy()


def digit_features(images: torch.Tensor, classifier: Classifier | None = None) -> np.ndarray:
    """Features [N, F] float64 of images [N, 1, 16, 16] under the bundled (or given) classifier."""
    return classifier_features((classifier or load_classifier()).net, images)


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^½, clipped at 0.

    tr (Σ_a Σ_b)^½ is computed as Σ √λ of the symmetric PSD matrix Σ_a^½ Σ_b Σ_a^½ (same
    eigenvalues), with round-off negatives clipped: exact for singular covariances
    (e.g. dead ReLU features) where scipy.linalg.sqrtm warns and loses accuracy.
    """
    w, v = scipy.linalg.eigh(a.cov)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = scipy.linalg.eigvalsh(root_a @ b.cov @ root_a)
    diff = a.mean - b.mean
    value = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * np.sqrt(np.clip(cross, 0.0, None)).sum()
    return max(float(value), 0.0)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between two feature sets [N, F] and [M, F]."""
    return frechet_distance_from_stats(feature_stats(feat_a), feature_stats(feat_b))


def fd_to_heldout(images: torch.Tensor, classifier: Classifier | None = None) -> float:
    """FD of images [N, 1, 16, 16] in [-1, 1] to the 1 000 held-out real digits.

    Compare values at equal N (FD is biased upward for small N); the real-vs-real
    floor at N = 1 000 is printed by the training script.
    """
    classifier = classifier or load_classifier()
    return frechet_distance_from_stats(feature_stats(digit_features(images, classifier)), classifier.heldout)
