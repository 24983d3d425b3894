"""TFLite RESHAPE and CONCATENATION (int8 and float32; no arithmetic on the values).

RESHAPE takes the new shape from its second input (constant or computed)
or from the ``newShape`` option, with one -1 inferred. CONCATENATION of
int8 tensors needs every input quantized like the output (as LiteRT
requires), so it is a plain copy.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.shape import new_shape
    >>> new_shape((2, 3, 4), [-1, 4])
    (6, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import bad_model, unsupported

__all__ = ["Concatenation", "Reshape", "new_shape"]


def new_shape(shape: tuple[int, ...], target: Any) -> tuple[int, ...]:
    want = [int(d) for d in np.asarray(target).reshape(-1)]
    total = int(np.prod(shape))
    if want.count(-1) > 1:
        raise InferenceError(f"RESHAPE target {want} has more than one -1")
    if -1 in want:
        known = int(np.prod([d for d in want if d != -1])) or 1
        want[want.index(-1)] = total // known
    if int(np.prod(want)) != total:
        raise InferenceError(f"RESHAPE cannot turn shape {tuple(shape)} into {want}")
    return tuple(want)


@register("RESHAPE", domain="tflite", since=1)
class Reshape(Op):
    """RESHAPE to the shape input or the ``newShape`` option."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.option = ctx.attr("newShape")
        # the target is fixed when the shape input is a constant, or absent (the option)
        consts, values = ctx.input_consts, ctx.input_values
        self.const_target = len(consts) < 2 or consts[1] is not None or (len(values) > 1 and values[1] is None)
        # input shape -> output shape, while the target is a constant (input or option)
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}

    def run(self, x: np.ndarray, shape: np.ndarray | None = None, *_: Any) -> tuple[np.ndarray]:
        known = self._shapes.get(x.shape)
        if known is not None:
            return (x.reshape(known),)
        target = shape if shape is not None and np.asarray(shape).size else self.option
        if target is None:
            raise bad_model(self.ctx, "has neither a shape input nor a newShape option")
        out = new_shape(x.shape, target)
        if self.const_target and len(self._shapes) < 16:
            self._shapes[x.shape] = out
        return (x.reshape(out),)


@register("CONCATENATION", domain="tflite", since=1)
class Concatenation(Op):
    """CONCATENATION along ``axis`` (int8 inputs quantized like the output, or float32)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.axis = int(ctx.attr("axis", 0))
        if int(ctx.attr("fusedActivationFunction", 0) or 0) != 0:
            raise unsupported(ctx, "a fused activation on CONCATENATION")
        out = ctx.output_values[0]
        if out.dtype == np.dtype(np.int8):
            for i, v in enumerate(ctx.input_values):
                if v is None or v.quant is None or out.quant is None:
                    raise bad_model(ctx, f"input {i} or the output has no quantization parameters")
                if (v.quant.scale, v.quant.zero_point) != (out.quant.scale, out.quant.zero_point):
                    raise bad_model(
                        ctx, f"int8 input {i} is quantized unlike the output; TFLite requires equal parameters"
                    )
        elif out.dtype not in (np.dtype(np.float32), np.dtype(np.int32)):
            raise unsupported(ctx, f"CONCATENATION of {out.dtype}")

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray]:
        return (np.concatenate(xs, axis=self.axis),)
