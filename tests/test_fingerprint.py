"""The model fingerprint on fp16 / bf16 / fp8 weights, tensor subclasses and unreadable (meta) tensors."""

from __future__ import annotations

import pytest
import torch

from vrg_core.fingerprint import fingerprint_weights, model_fingerprint


def weights(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn((64, 32), generator=g).to(dtype), "a.bias": torch.randn(64, generator=g).to(dtype),
            "b.weight": torch.randn((3, 3, 8, 8), generator=g).to(dtype)}


class PackedTensor(torch.Tensor):
    """Stands in for a GGUF tensor (ComfyUI-GGUF's GGMLTensor): packed bytes in its storage, logical shape aside."""

    @staticmethod
    def __new__(cls, packed, logical_shape):
        return torch.Tensor._make_subclass(cls, packed)

    def __init__(self, packed, logical_shape):
        self.logical_shape = torch.Size(logical_shape)

    @property
    def shape(self):
        return self.logical_shape


class OpaqueQuantized(torch.Tensor):
    """Stands in for a quantised wrapper tensor (QuantizedTensor): no storage, and no op it does not know."""

    @staticmethod
    def __new__(cls, shape):
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch.float8_e4m3fn)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.detach.default:
            return args[0]
        raise NotImplementedError(f"OpaqueQuantized does not implement {func}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn])
def test_low_precision_weights_are_read_and_told_apart(dtype):
    result = fingerprint_weights(weights(dtype))
    assert result.complete and len(result.value) == 16 and result.note() == ""
    assert result.value == model_fingerprint(weights(dtype))  # deterministic
    assert result.value != model_fingerprint(weights(dtype, seed=1))  # other values, other fingerprint
    assert result.value != model_fingerprint(weights(torch.float32))  # another precision, another fingerprint


def test_parameters_and_non_contiguous_tensors():
    plain = weights()
    params = {k: torch.nn.Parameter(v) for k, v in plain.items()}
    assert model_fingerprint(params) == model_fingerprint(plain)
    transposed = {k: v.t() if v.ndim == 2 else v for k, v in plain.items()}
    assert fingerprint_weights(transposed).complete


def test_packed_subclass_is_read_through_its_storage():
    g = torch.Generator().manual_seed(0)
    packed = torch.randint(0, 255, (4, 18), generator=g, dtype=torch.uint8)
    tensor = PackedTensor(packed, (4, 32))
    result = fingerprint_weights({"q.weight": tensor, **weights()})
    assert result.complete
    other = PackedTensor(packed.flip(1).contiguous(), (4, 32))
    assert result.value != fingerprint_weights({"q.weight": other, **weights()}).value


def test_unreadable_values_fall_back_to_names_shapes_and_dtypes_and_say_so():
    opaque = OpaqueQuantized((64, 32))
    mixed = {**weights(), "q.weight": opaque, "m.weight": torch.empty((8, 8), device="meta")}
    result = fingerprint_weights(mixed)
    assert sorted(result.unread) == ["m.weight", "q.weight"]
    assert "could not be read" in result.note() and "names, shapes and dtypes" in result.note()
    assert result.value == model_fingerprint(mixed)
    # the structure still tells models apart
    assert result.value != model_fingerprint({**mixed, "m.weight": torch.empty((8, 9), device="meta")})
