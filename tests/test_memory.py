"""The memory refusal before profiling or a VRG+ search that would not fit."""

from __future__ import annotations

import pytest

from vrg_core.errors import VRGError
from vrg_core.memory import GIB, available_bytes, check_profile_memory, check_search_memory, search_bytes

WAN_480P_81 = (1, 16, 21, 60, 104)  # Wan 2.1 latent of 480 x 832 x 81 frames
FLUX_1024 = (1, 16, 128, 128)


def test_available_memory_is_known_here():
    assert available_bytes() is None or available_bytes() > 0


def test_search_that_fits_passes_and_returns_its_estimate():
    need = check_search_memory(FLUX_1024, batch_size=1, grid_points=100, samples=10, available=64 * GIB)
    assert need == search_bytes(16 * 128 * 128, 1, 100, 10) and 0.8 * GIB < need < 0.9 * GIB  # measured 0.82


def test_search_too_big_is_refused_with_the_batch_that_fits():
    with pytest.raises(VRGError) as caught:
        check_search_memory(FLUX_1024, batch_size=8, grid_points=100, samples=13, available=6 * GIB)
    message = str(caught.value)
    assert "needs about 6.7 GiB" in message and "6.0 GiB is available" in message
    assert "lower batch_size to 5" in message  # 0.8 x 6 GiB holds 5 samples' worth (0.83 GiB each)


def test_search_too_big_even_at_batch_one_says_so():
    with pytest.raises(VRGError, match="even batch_size 1 needs 6.8 GiB: search at a smaller latent"):
        check_search_memory(WAN_480P_81, batch_size=4, grid_points=100, samples=13, available=4 * GIB)


def test_profile_too_big_is_refused_with_a_smaller_batch():
    with pytest.raises(VRGError, match="needs about 2.5 GiB .* but 1.0 GiB is available; lower batch_size to 4"):
        check_profile_memory((4, *WAN_480P_81[1:]), batch_size=16, available=GIB)
    assert check_profile_memory((4, 16, 128, 128), batch_size=16, available=2 * GIB) < 0.35 * GIB
