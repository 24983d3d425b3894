"""Bernoulli-22 and RandomUniformLike-22, implemented but **not claimed** by the native engine.

Every op the native engine claims must pass all of its ONNX node tests, and
these cannot: the stored outputs of ``test_bernoulli*`` (and of the
``*_expanded`` variants, which use RandomUniformLike) are one draw of the
test generator's global numpy random state, which the ``seed`` attribute
does not even feed; onnx's own test case says the values "may not produce
the same values in different implementations even if a seed is specified".
Only the shape, the dtype and the value set can match. So the classes are
here, tested on their own (reproducible per seed, right distribution), and
:func:`register_random_ops` claims them for a caller who wants them (for
example once the node-test harness compares random ops by shape, dtype and
support only).

Semantics: each node owns one ``numpy.random.Generator`` (PCG64), seeded
from ``int(seed)`` when ``seed`` is given (so a session's successive runs
continue one reproducible stream, and two sessions with the same seed agree)
and from OS entropy otherwise. Bernoulli draws ``U < p`` for ``U`` uniform in
``[0, 1)`` (probabilities must lie in ``[0, 1]``) and casts to ``dtype``
(default: the input's); RandomUniformLike draws ``low + (high - low) * U`` in
float64 and rounds once to ``dtype`` (default: the input's, which must then
be a float type).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> op = Bernoulli(OpContext(node_name="b", op_type="Bernoulli", opset=22, attrs={"seed": 3.0}))
    >>> op.run(np.array([0.0, 1.0, 1.0, 0.0]))[0]
    array([0., 1., 1., 0.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["Bernoulli", "RandomUniformLike", "register_random_ops"]


def _fail(ctx: OpContext, message: str) -> InferenceError:
    return InferenceError(f"{ctx.op_type} node {ctx.node_name!r} (opset {ctx.opset}): {message}")


def _generator(ctx: OpContext) -> np.random.Generator:
    seed = ctx.attr("seed")
    if seed is None or np.isnan(float(seed)):
        return np.random.default_rng()
    return np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)


def _dtype_attr(ctx: OpContext) -> np.dtype | None:
    code = ctx.attr("dtype")
    if code is None:
        return None
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        return np.dtype(tensor_dtype_to_np_dtype(int(code)))
    except (KeyError, TypeError, ValueError):
        raise _fail(ctx, f"dtype={code} is not an ONNX tensor type") from None


class Bernoulli(Op):
    """Bernoulli-22: 1 with probability ``input``, else 0, in ``dtype``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._rng = _generator(ctx)
        self._dtype = _dtype_attr(ctx)

    def run(self, x: Any) -> tuple[np.ndarray]:
        p = np.asarray(x)
        if p.dtype.kind != "f" and p.dtype.name != "bfloat16":
            raise _fail(self.ctx, f"input must be a float tensor of probabilities, got {p.dtype}")
        p64 = p.astype(np.float64)
        if p64.size and not (np.all(p64 >= 0.0) and np.all(p64 <= 1.0)):
            raise _fail(self.ctx, "probabilities must lie in [0, 1] (NaN is not a probability)")
        draws = self._rng.random(p.shape) < p64
        return (draws.astype(self._dtype or p.dtype),)


class RandomUniformLike(Op):
    """RandomUniformLike-22: uniform values in ``[low, high)`` with the input's shape."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._rng = _generator(ctx)
        self._dtype = _dtype_attr(ctx)
        self._low = float(ctx.attr("low", 0.0))
        self._high = float(ctx.attr("high", 1.0))
        if not self._low <= self._high:
            raise _fail(ctx, f"low={self._low} must not exceed high={self._high}")
        if self._dtype is not None and self._dtype.kind != "f" and self._dtype.name != "bfloat16":
            raise _fail(ctx, f"dtype must be a float type, got {self._dtype}")

    def run(self, x: Any) -> tuple[np.ndarray]:
        like = np.asarray(x)
        dtype = self._dtype or like.dtype
        if dtype.kind != "f" and dtype.name != "bfloat16":
            raise _fail(self.ctx, f"the input is {like.dtype}: set the dtype attribute to a float type")
        values = self._low + (self._high - self._low) * self._rng.random(like.shape)
        return (values.astype(dtype),)


def register_random_ops() -> None:
    """Claim Bernoulli-22 and RandomUniformLike-22 for the native engine (see the module notes).

    >>> register_random_ops()  # doctest: +SKIP
    >>> from edgeai.ops._base import lookup
    >>> lookup("Bernoulli", "", 22) is Bernoulli  # doctest: +SKIP
    True
    """
    register("Bernoulli", since=22)(Bernoulli)
    register("RandomUniformLike", since=22)(RandomUniformLike)
