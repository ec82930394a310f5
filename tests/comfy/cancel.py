"""Pressing ComfyUI's Interrupt mid-run, for the tests of long nodes."""

from __future__ import annotations


def interrupt_after(monkeypatch, calls: int) -> None:
    """ComfyUI's cancel (Interrupt) fires at its `calls + 1`-th check, as when the user presses it mid-run."""
    import comfy.model_management as mm

    seen = [0]

    def check():
        seen[0] += 1
        if seen[0] > calls:
            raise mm.InterruptProcessingException()

    monkeypatch.setattr(mm, "throw_exception_if_processing_interrupted", check)
