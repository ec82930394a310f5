from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    """The official VRG reference files (non-commercial licence: read in place, never copied)."""
    if not (REFERENCE / "vrg_official_mse_vs_alpha_bar_cifar10.tsv").is_file():
        pytest.skip(f"official reference data not found at ../shared/reference (looked in {REFERENCE})")
    return REFERENCE
