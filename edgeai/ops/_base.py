"""The contract every native op implements, and the op registry.

One op (or one small family) per module under ``edgeai/ops/``. A class
registers itself for an op type, a domain and the first opset version whose
semantics it implements; the registry picks, for a model's opset, the newest
class whose ``since`` is not newer than it (as ``onnx.reference`` does).

An op is built once per node when the session is created (``__init__``
receives an :class:`OpContext`: attributes, constant inputs, opset) so it can
validate attributes and pre-pack weights there, and ``run`` is called on
every inference with the runtime inputs (``None`` for an omitted optional
input). ``run`` returns a tuple with one array per node output.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import Op, OpContext, register, lookup
    >>> @register("MyRelu", domain="example.test", since=1)
    ... class MyRelu(Op):
    ...     def run(self, x):
    ...         return (np.maximum(x, 0),)
    >>> cls = lookup("MyRelu", "example.test", 1)
    >>> cls(OpContext(node_name="n0", op_type="MyRelu", domain="example.test", opset=1)).run(
    ...     np.array([-1.0, 2.0]))[0]
    array([0., 2.])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["Op", "OpContext", "lookup", "register", "registered"]


@dataclass
class OpContext:
    """What an op knows about its node when the session is created."""

    node_name: str
    op_type: str
    domain: str = ""
    opset: int = 1
    """The model's opset for this op's domain."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """Attributes as Python values: int, float, str, list, np.ndarray, or a subgraph object."""
    input_consts: tuple[np.ndarray | None, ...] = ()
    """For each input: its value when it is a constant (initializer), else None."""
    num_outputs: int = 1
    requant_mode: str = "onnx"
    """``"onnx"`` (float scale, round half to even) or ``"tflite"`` (fixed-point multiplier)."""
    run_subgraph: Callable[..., Any] | None = None
    """For control-flow ops: ``run_subgraph(graph, feeds: dict, outer: dict) -> list[array]``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Session options (threads, ...)."""

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class Op:
    """Base class of a native op. Subclasses implement :meth:`run`."""

    op_type: ClassVar[str] = ""
    domain: ClassVar[str] = ""
    since: ClassVar[int] = 1

    def __init__(self, ctx: OpContext) -> None:
        self.ctx = ctx

    def run(self, *inputs: Any) -> tuple[Any, ...]:
        raise NotImplementedError


# (domain, op_type) -> list of (since, class), sorted by since
_REGISTRY: dict[tuple[str, str], list[tuple[int, type[Op]]]] = {}


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def register(op_type: str, *, domain: str = "", since: int = 1) -> Callable[[type[Op]], type[Op]]:
    """Class decorator: register an :class:`Op` for ``op_type`` from opset ``since`` on."""

    def deco(cls: type[Op]) -> type[Op]:
        key = (_norm_domain(domain), op_type)
        entries = _REGISTRY.setdefault(key, [])
        entries[:] = [e for e in entries if e[0] != since]
        entries.append((since, cls))
        entries.sort(key=lambda e: e[0])
        if not cls.op_type:
            cls.op_type = op_type
            cls.domain = _norm_domain(domain)
            cls.since = since
        return cls

    return deco


def lookup(op_type: str, domain: str, opset: int) -> type[Op] | None:
    """The class implementing ``op_type`` at ``opset``, or None."""
    entries = _REGISTRY.get((_norm_domain(domain), op_type))
    if not entries:
        return None
    best = None
    for since, cls in entries:
        if since <= opset:
            best = cls
    return best


def registered() -> dict[tuple[str, str], list[int]]:
    """(domain, op_type) -> the opset versions with their own implementation."""
    return {k: [s for s, _ in v] for k, v in sorted(_REGISTRY.items())}
