"""The contract every native op implements, and the op registry.

One op (or one small family) per module under ``edgeai/ops/``. A class
registers itself for an op type, a domain and the first opset version whose
semantics it implements; the registry picks, for a model's opset, the newest
class whose ``since`` is not newer than it (as ``onnx.reference`` does).

Versions are honest. A model's opset is first resolved to the op's *schema*
version with ``onnx.defs`` (a model at opset 12 runs ``Relu`` version 6); a
registration covers the schema versions from its ``since`` up to its
``until`` (inclusive) when given, else up to the next registration of the
same op, else every later version. So ``register("Relu", since=6)`` does not
claim ``Relu-1`` even for a model at opset 5, and ``until=13`` stops a class
from claiming ``Relu-14``. Register one ``since`` per schema version whose
semantics (or types) the class was checked against; the ONNX node tests check
every claimed version. Ops that ``onnx.defs`` does not know (custom domains)
resolve to the model's opset itself.

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

__all__ = [
    "Op",
    "OpContext",
    "claimed_versions",
    "lookup",
    "nhwc_base",
    "register",
    "registered",
    "resolve_version",
    "schema_versions",
]


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
    outer_names: tuple[str, ...] = ()
    """Outer-scope names the node's subgraphs read. The executor passes their values to
    ``run`` after the declared inputs, in this order (empty for ops without subgraphs)."""
    schema_version: int | None = None
    """The op's schema version (``since_version`` in ``onnx.defs``) at the model's opset."""
    input_values: tuple[Any, ...] = ()
    """For each input: what the graph knows of it (an ``edgeai.graph.Value``: dtype, shape
    with symbolic dims, quant params), or None for an omitted input. Lets an op reject
    a dtype it does not implement when the session is built rather than at run time."""
    output_values: tuple[Any, ...] = ()
    """For each output: its ``edgeai.graph.Value`` (dtype and shape may be None: unknown)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Session options (threads, ...)."""
    graph_inputs: tuple[bool, ...] = ()
    """For each input: whether it is an input of the graph, handed over by the caller as it is (its
    buffer is the caller's, at whatever address and alignment), rather than a tensor the engine made."""

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class Op:
    """Base class of a native op. Subclasses implement :meth:`run`."""

    op_type: ClassVar[str] = ""
    domain: ClassVar[str] = ""
    since: ClassVar[int] = 1
    program_safe: ClassVar[bool] = False
    """Whether the step :meth:`bind_static` returns does all its work through kernel calls that report to
    :mod:`edgeai.kernels._record`, choosing them by shapes, dtypes and constants only (never by values):
    then a run of such steps may be compiled into one program (:mod:`edgeai.graph.program`)."""

    def __init__(self, ctx: OpContext) -> None:
        self.ctx = ctx

    def run(self, *inputs: Any) -> tuple[Any, ...]:
        raise NotImplementedError


# (domain, op_type) -> list of (since, until, class), sorted by since
_REGISTRY: dict[tuple[str, str], list[tuple[int, int | None, type[Op]]]] = {}
_SCHEMA_VERSIONS: dict[tuple[str, str], tuple[int, ...]] | None = None


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def register(
    op_type: str, *, domain: str = "", since: int = 1, until: int | None = None
) -> Callable[[type[Op]], type[Op]]:
    """Class decorator: register an :class:`Op` for ``op_type`` from schema version ``since``
    (up to ``until``, inclusive, when given). Registering the same ``since`` again replaces it."""
    if until is not None and until < since:
        raise ValueError(f"register({op_type!r}): until={until} is before since={since}")

    def deco(cls: type[Op]) -> type[Op]:
        key = (_norm_domain(domain), op_type)
        entries = _REGISTRY.setdefault(key, [])
        entries[:] = [e for e in entries if e[0] != since]
        entries.append((since, until, cls))
        entries.sort(key=lambda e: e[0])
        if not cls.op_type:
            cls.op_type = op_type
            cls.domain = _norm_domain(domain)
            cls.since = since
        return cls

    return deco


def schema_versions(op_type: str, domain: str = "") -> tuple[int, ...]:
    """The ``since_version`` of every schema ``onnx.defs`` knows for the op (empty if none)."""
    global _SCHEMA_VERSIONS
    if _SCHEMA_VERSIONS is None:
        import onnx.defs

        table: dict[tuple[str, str], set[int]] = {}
        for schema in onnx.defs.get_all_schemas_with_history():
            table.setdefault((_norm_domain(schema.domain), schema.name), set()).add(int(schema.since_version))
        _SCHEMA_VERSIONS = {k: tuple(sorted(v)) for k, v in table.items()}
    return _SCHEMA_VERSIONS.get((_norm_domain(domain), op_type), ())


def resolve_version(op_type: str, domain: str, opset: int) -> int | None:
    """The op's schema version at a model's ``opset`` (None: the op does not exist there).

    Ops unknown to ``onnx.defs`` (custom domains) resolve to ``opset`` itself.

    >>> resolve_version("Relu", "", 12)
    6
    """
    key = (op_type, _norm_domain(domain), int(opset))
    try:
        return _RESOLVED[key]
    except KeyError:
        pass
    import onnx.defs  # one schema lookup (the history table of every schema costs ~10 ms to build)

    if not onnx.defs.has(key[0], key[1]):
        version: int | None = opset
    else:
        try:
            version = int(onnx.defs.get_schema(key[0], key[2], key[1]).since_version)
        except onnx.defs.SchemaError:
            version = None
    _RESOLVED[key] = version
    return version


_RESOLVED: dict[tuple[str, str, int], int | None] = {}


def _covering(entries: list[tuple[int, int | None, type[Op]]], version: int) -> type[Op] | None:
    best = None
    for i, (since, until, cls) in enumerate(entries):
        if since > version:
            break
        nxt = entries[i + 1][0] if i + 1 < len(entries) else None
        end = until if until is not None else (nxt - 1 if nxt is not None else None)
        best = cls if end is None or version <= end else None
    return best


def lookup(op_type: str, domain: str, opset: int) -> type[Op] | None:
    """The class implementing ``op_type`` at a model's ``opset``, or None when no
    registration covers the op's schema version there."""
    entries = _REGISTRY.get((_norm_domain(domain), op_type))
    if not entries:
        return None
    version = resolve_version(op_type, domain, opset)
    if version is None:
        return None
    return _covering(entries, version)


def claimed_versions(op_type: str, domain: str = "") -> tuple[int, ...]:
    """The schema versions of an op that some registered class covers.

    For ops ``onnx.defs`` does not know, the registered ``since`` values
    (each meaning "this opset and later, up to the next one").
    """
    entries = _REGISTRY.get((_norm_domain(domain), op_type))
    if not entries:
        return ()
    versions = schema_versions(op_type, domain)
    if not versions:
        return tuple(e[0] for e in entries)
    return tuple(v for v in versions if _covering(entries, v) is not None)


def registered() -> dict[tuple[str, str], list[int]]:
    """(domain, op_type) -> the ``since`` versions with their own registration."""
    return {k: [e[0] for e in v] for k, v in sorted(_REGISTRY.items())}


def nhwc_base(x: np.ndarray) -> np.ndarray | None:
    """The C-contiguous NHWC array of which ``x`` is the NCHW view (``base.transpose(0, 3, 1, 2)``),
    or None when ``x`` is not such a view (QLinearConv hands its NHWC results on this way)."""
    if x.ndim != 4 or x.flags.c_contiguous:
        return None
    base = x.transpose(0, 2, 3, 1)
    return base if base.flags.c_contiguous else None
