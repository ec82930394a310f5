"""fp16 / bf16 / fp8 weights and quantised tensor types through the nodes: fingerprint, profile, apply, optimise.

The weights are stored in that precision and computed in float32 (ComfyUI's manual cast, as it runs
fp16 / bf16 / fp8 checkpoints on a CPU). A tensor whose values cannot be read (a stand-in for a
quantised wrapper tensor without storage) makes the fingerprint fall back to names, shapes and
dtypes, which the nodes say; they do not fail.
"""

from __future__ import annotations

import pytest
import torch

import families


class OpaqueQuantized(torch.Tensor):
    """Stands in for QuantizedTensor / GGUF tensors whose values the fingerprint cannot read."""

    @staticmethod
    def __new__(cls, shape):
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch.float8_e4m3fn)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.detach.default:
            return args[0]
        raise NotImplementedError(f"OpaqueQuantized does not implement {func}")


@pytest.fixture(scope="module")
def table(run, comfy):
    torch.set_num_threads(1)
    return profile(run, families.model("sd15"))


def profile(run, model):
    latent = {"samples": torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))}
    return run("VRGProfile", model=model, latent=latent, grid_size=4, samples_per_level=1, batch_size=4, seed=0,
               cfg=2.0, positive=families.conditioning("sd15", 0), negative=families.conditioning("sd15", 1))[0]


def apply_and_optimize(run, model, table):
    import comfy.samplers

    applied = run("VRGApply", model=model, table=table, base_scheduler="karras", gamma=0.0, start="fixed")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", 6)
    optimized = run("VRGOptimizeSigmas", sigmas=sigmas, table=table, gamma=0.0, start="fixed", method="exact",
                    interpolation="loglog", model=model)
    return applied, optimized


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn])
def test_low_precision_weights_through_the_nodes(run, table, dtype):
    from vrg_pack.nodes.model_identity import weights_fingerprint

    model = families.model("sd15", dtype=dtype)
    assert model.model.diffusion_model.input_blocks[0][0].weight.dtype == dtype
    fingerprint = weights_fingerprint(model)
    assert fingerprint.complete and fingerprint.value != weights_fingerprint(families.model("sd15")).value
    low = profile(run, model)
    assert low.info.model_fingerprint == fingerprint.value and torch.isfinite(torch.as_tensor(low.sum_mse)).all()
    applied, optimized = apply_and_optimize(run, model, low)
    assert not any("could not be read" in line for line in applied.ui["text"] + optimized.ui["text"])
    assert torch.isfinite(optimized[0]).all()


def test_unreadable_weights_fall_back_and_the_nodes_say_so(run, table):
    model = families.model("sd15")
    block = model.model.diffusion_model.input_blocks[0][0]
    block.weight = torch.nn.Parameter(OpaqueQuantized(tuple(block.weight.shape)), requires_grad=False)
    applied, optimized = apply_and_optimize(run, model, table)
    for ui in (applied.ui, optimized.ui):
        warning = [line for line in ui["text"] if "could not be read" in line]
        assert warning and "input_blocks.0.0.weight" in warning[0] and "names, shapes and dtypes" in warning[0]
    assert torch.isfinite(optimized[0]).all()


def test_a_diffusion_model_comfyui_loads_has_the_fingerprint_of_its_file(comfy, tmp_path):
    """The identity a table records here is what the webui extension compares with its loaded checkpoint
    (`scripts/vrg_schedulers.py`, which fingerprints the UNet's weights as the file holds them): ComfyUI's own
    loader (UNETLoader's `comfy.sd.load_diffusion_model`) keeps the file's names, shapes, dtypes and values."""
    import comfy.sd
    import safetensors.torch

    from vrg_pack.nodes.model_identity import fingerprint
    from vrg_pack.vrg_core.fingerprint import fingerprint_weights

    path = tmp_path / "sd3.safetensors"
    families.save_diffusion_model("sd3", path)
    model = comfy.sd.load_diffusion_model(str(path))
    in_file = fingerprint_weights(safetensors.torch.load_file(str(path))).value
    assert fingerprint(model) == in_file != fingerprint(families.model("sd3", seed=1))
