"""The native backend: edgeai's own engine over the graph IR and ``edgeai/ops``.

``Session(model, device="native")`` imports the model into the IR
(:mod:`edgeai.graph.onnx_import`), applies the rewrite passes listed in
:data:`GRAPH_PASSES` (modules not present in this build are skipped),
checks that every node's op and opset is implemented (else one
:class:`~edgeai.errors.UnsupportedOpError` lists every missing op, node and
opset) and compiles it once (:class:`~edgeai.graph.executor.CompiledGraph`).

Example:
    >>> import numpy as np, edgeai
    >>> from edgeai.backends import get_backend
    >>> [d.id for d in get_backend("native").devices()]
    ['native:cpu']
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeai.backends import Support
from edgeai.errors import InputNameError, InputShapeError, InputTypeError, SessionClosedError
from edgeai.formats import ModelSource
from edgeai.hardware import Device, DeviceKind
from edgeai.hardware._cpu import cpu_name, cpuinfo_field
from edgeai.specs import TensorSpec

if TYPE_CHECKING:
    from edgeai.placement.report import PlacementReport

__all__ = ["BACKEND", "GRAPH_PASSES", "NativeBackend", "NativeExecutable", "apply_passes"]

GRAPH_PASSES: tuple[str, ...] = ("edgeai.graph.qdq_fusion:fuse_qdq",)
"""Rewrite passes run before compiling, in order: ``"module:function"``, each
``function(graph) -> graph``. A module that is not part of this build is skipped."""

_DEVICE_ID = "native:cpu"


def apply_passes(graph: Any, passes: Sequence[str] = GRAPH_PASSES) -> Any:
    """Run each available pass of ``passes`` over ``graph``; returns the rewritten graph."""
    for spec in passes:
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # the pass's module is not in this build (yet)
            raise
        graph = getattr(module, func_name)(graph)
    return graph


class NativeBackend:
    """The ``native`` backend. See the module docstring."""

    name = "native"
    formats = ("onnx",)

    def __init__(self) -> None:
        self._device: Device | None = None

    def available(self) -> bool:
        return True  # pure Python over numpy (numba for the INT8 kernels, a core dependency)

    def devices(self) -> list[Device]:
        if self._device is None:
            self._device = Device(
                id=_DEVICE_ID,
                kind=DeviceKind.CPU,
                name=cpu_name(),
                vendor=_cpu_vendor(),
                backend=self.name,
                provider="edgeai-native",
                properties={"engine": "edgeai native (numpy, numba INT8 kernels)"},
            )
        return [self._device]

    def supports(self, node: Any, device: Device, opset: int | None = None) -> Support:
        """Whether the op registry implements ``node`` (an IR ``Node`` or ``onnx.NodeProto``).

        ``opset`` is the model's opset for the node's domain (see ``Graph.opsets``);
        when omitted, the newest opset onnx knows is assumed for the default domain.
        The reason names the implementing class, or the missing op and version.
        """
        from edgeai.ops import load_all
        from edgeai.ops._base import lookup, resolve_version

        if device.backend != self.name:
            return Support(False, f"{device.id} is not a native-engine device")
        op_type, domain = node.op_type, "" if node.domain in ("", "ai.onnx") else node.domain
        if opset is None:
            import onnx.defs

            opset = onnx.defs.onnx_opset_version() if domain == "" else 1
        load_all()
        cls = lookup(op_type, domain, int(opset))
        op = f"{domain}:{op_type}" if domain else op_type
        if cls is None:
            version = resolve_version(op_type, domain, int(opset))
            where = f"schema version {version}" if version is not None else "no schema at that opset"
            return Support(False, f"the native engine has no {op} for opset {opset} ({where})")
        return Support(True, f"native {cls.__module__}.{cls.__name__} implements {op} at opset {opset}")

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> NativeExecutable:
        """Import a whole ONNX model, apply :data:`GRAPH_PASSES`, compile it."""
        from edgeai.graph.onnx_import import import_onnx

        graph = import_onnx(source)
        return self.compile(graph, device, options, what=source.display_name)

    def compile(
        self, partition: Any, device: Device, options: dict[str, Any], *, what: str | None = None
    ) -> NativeExecutable:
        """Compile an IR graph (a whole model, or a partition from ``Graph.extract``).

        The ``graph_passes`` option replaces :data:`GRAPH_PASSES`.

        Example:
            >>> import numpy as np, edgeai
            >>> from edgeai.backends import get_backend
            >>> from edgeai.graph.onnx_import import import_onnx
            >>> g = import_onnx(edgeai.demo.model_path())
            >>> native = get_backend("native")
            >>> part = native.compile(g.extract([n.name for n in g.nodes[:2]]), native.devices()[0], {})
            >>> part.run({"image": np.zeros((1, 1, 8, 8), np.float32)})[0].shape[:2]
            (1, 16)
        """
        graph = apply_passes(partition, tuple(options.get("graph_passes", GRAPH_PASSES)))
        return NativeExecutable(graph, device, options, what or f"graph {partition.name!r}")


def _cpu_vendor() -> str:
    vendor = cpuinfo_field("vendor_id")
    if vendor is None:
        return "unknown"
    return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor)


def _spec(graph: Any, name: str) -> TensorSpec:
    value = graph.value(name)
    dtype = value.dtype if value.dtype is not None and value.kind == "tensor" else np.dtype(object)
    shape = value.shape if value.kind == "tensor" else None
    return TensorSpec(name, dtype, shape, value.quant)


# Float ops whose native implementation calls BLAS (numpy matmul/tensordot/einsum).
_BLAS_OPS = frozenset(
    {
        "MatMul",
        "Gemm",
        "Conv",
        "ConvTranspose",
        "Einsum",
        "LSTM",
        "GRU",
        "RNN",
        "Attention",
        "MultiHeadAttention",
        "GroupQueryAttention",
        "DeformConv",
        "MatMulIntegerToFloat",
    }
)


class NativeExecutable:
    """An IR graph (a whole model or a partition) compiled for the native engine.

    Feeds are checked here (dtype, rank, fixed and shared symbolic dims of
    tensor inputs) so that sequence and optional inputs pass through as they
    are; on a failure Session re-validates and explains.
    """

    validates_inputs = True

    def __init__(self, graph: Any, device: Device, options: dict[str, Any], what: str) -> None:
        from edgeai.graph.executor import CompiledGraph

        self.device = device
        self._what = what
        self.graph = graph
        requant = str(options.get("requant_mode") or "onnx")
        self._compiled: CompiledGraph | None = CompiledGraph(
            self.graph, options=options, requant_mode=requant, what=self._what
        )
        if "numba" in sys.modules:  # kernels an op loads at its first run (edgeai.ops does it for the rest)
            from edgeai.kernels.cached_kernels import install

            install()
        self.inputs = [_spec(self.graph, n) for n in self.graph.inputs]
        self.outputs = [_spec(self.graph, n) for n in self.graph.outputs]
        self.output_names = list(self.graph.outputs)
        checked = [s for s in self.inputs if self.graph.value(s.name).kind == "tensor" and s.dtype != np.dtype(object)]
        shared = [d for s in checked for d in (s.shape or ()) if isinstance(d, str)]
        # per input: (name, dtype, shape, rank or -1, [(axis, fixed size)], [(axis, dim name shared by
        # several axes)]): a symbolic dim named once constrains nothing, so it is not looked at per run
        self._tensor_checks = [
            (
                s.name,
                s.dtype,
                s.shape,
                -1 if s.shape is None else len(s.shape),
                tuple((a, d) for a, d in enumerate(s.shape or ()) if isinstance(d, int)),
                tuple((a, d) for a, d in enumerate(s.shape or ()) if isinstance(d, str) and shared.count(d) > 1),
            )
            for s in checked
        ]
        self._lock = threading.Lock()
        # With threads=N, BLAS (numpy's matmul under the float ops) is capped at N threads
        # for each run: OpenBLAS's default pool oversubscribes a busy 2-core machine badly
        # (resnet50 3.1 s against 0.6 s with one thread, measured under load).
        uses_blas = any(n.op_type in _BLAS_OPS for _, n in graph.walk())
        self._blas_threads = int(options["threads"]) if options.get("threads") and uses_blas else None
        self._blas = None
        self._serial = int(options.get("threads") or 1) > 1

    def _blas_limit(self) -> Any:
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        return self._blas.limit(limits=self._blas_threads, user_api="blas")

    def _check(self, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        """``feeds`` with non-array tensor inputs converted (a copy only then), after the dtype, rank,
        fixed-dim and shared-dim checks."""
        checked = feeds
        bound: dict[str, int] = {}
        for name, dtype, shape, rank, fixed, named in self._tensor_checks:
            try:
                value = feeds[name]
            except KeyError:
                raise InputNameError(
                    f"missing input {name!r}; the model's inputs are {[s.name for s in self.inputs]}"
                ) from None
            if not isinstance(value, np.ndarray):
                if checked is feeds:
                    checked = dict(feeds)
                value = checked[name] = np.asarray(value, dtype=dtype)
            if value.dtype != dtype:
                raise InputTypeError(f"input {name!r} expects dtype {dtype}, got {value.dtype}")
            if rank < 0:
                continue
            got = value.shape
            if len(got) != rank:
                raise InputShapeError(f"input {name!r} expects rank {rank}, got shape {got}")
            for axis, want in fixed:
                if got[axis] != want:
                    raise InputShapeError(f"input {name!r} expects shape {shape}, got {got}")
            for axis, dim in named:
                if bound.setdefault(dim, got[axis]) != got[axis]:
                    raise InputShapeError(
                        f"dimension {dim!r} of input {name!r} is {got[axis]}, but {bound[dim]} elsewhere"
                    )
        return checked

    def run(self, feeds: dict[str, Any], output_names: Sequence[str] | None = None) -> list[Any]:
        compiled = self._compiled
        if compiled is None:
            raise SessionClosedError("the session is closed; create a new edgeai.Session")
        if self._serial:
            # numba's workqueue threading layer is not re-entrant: multi-threaded
            # kernels must not be entered from two Python threads at once
            with self._lock:
                return self._run(compiled, feeds, output_names)
        return self._run(compiled, feeds, output_names)

    def _run(self, compiled: Any, feeds: dict[str, Any], output_names: Sequence[str] | None) -> list[Any]:
        if self._blas_threads is None:
            return compiled.run(self._check(feeds), output_names)
        with self._blas_limit():
            return compiled.run(self._check(feeds), output_names)

    def run_fast(self, output_names: Sequence[str] | None, feeds: dict[str, Any], _opts: Any = None) -> list[Any]:
        """ONNX Runtime's argument order, as Session's fast path calls it."""
        return self.run(feeds, output_names)

    def placement(self) -> PlacementReport:
        from edgeai.ops._base import lookup
        from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport

        nodes = []
        for node in self.graph.nodes:
            opset = int(self.graph.opsets.get(node.domain, 1))
            cls = lookup(node.op_type, node.domain, opset)
            cls_name = f"{cls.__module__}.{cls.__name__}" if cls is not None else "?"
            nodes.append(
                NodePlacement(
                    name=node.name,
                    op_type=node.op_type,
                    domain=node.domain,
                    device=self.device.id,
                    reason=f"native op {cls_name} implements {node.op_type} at opset {opset}",
                )
            )
        part = PartitionInfo(
            index=0,
            device=self.device.id,
            device_kind=self.device.kind.value,
            backend="native",
            provider=self.device.provider,
            nodes=[n.name for n in self.graph.nodes],
        )
        return PlacementReport(
            model=self._what, nodes=nodes, partitions=[part], source="edgeai native engine (whole model)"
        )

    def close(self) -> None:
        self._compiled = None


BACKEND = NativeBackend()
