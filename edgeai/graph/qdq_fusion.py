"""QDQ fusion: run a QDQ model on integer kernels, the way ONNX Runtime does.

A QDQ model (``DequantizeLinear -> float op -> QuantizeLinear``, what
``onnxruntime.quantization.quantize_static`` writes by default) describes
integer arithmetic in float ops. ONNX Runtime (graph optimization level
"all", CPU) rewrites each such node group into one QLinear op; running the
groups in float instead would round differently. :func:`fuse_qdq` applies
the same rewrites to the IR, so the native engine's results are bit-identical
to ONNX Runtime's:

==========================================  ===============================
``DQ(x), DQ(w)[, DQ(int32 b)] -> Conv -> Q``   ``QLinearConv``
``DQ(a), DQ(b) -> MatMul -> Q``                ``QLinearMatMul``
``DQ(a), DQ(b) -> MatMul`` (float out)         ``MatMulIntegerToFloat``
``DQ(a), DQ(b)[, DQ(int32 c)] -> Gemm[ -> Q]`` ``QGemm`` (quantized or float out)
``DQ(a), DQ(b) -> Add|Mul -> Q``               ``QLinearAdd`` / ``QLinearMul``
``DQ(x) -> AveragePool|GlobalAveragePool|``    ``QLinear<op>``
``LeakyRelu|Sigmoid|Softmax -> Q``
``DQ(x_i)... -> Concat -> Q``                  ``QLinearConcat``
==========================================  ===============================

A Conv or Gemm group whose weight or bias is a float constant has them
quantized first, as ONNX Runtime's ``WeightBiasQuantization`` does (weight:
int8 per tensor over ``[min(w, 0), max(w, 0)]``; bias: int32 with scale
``x_scale * w_scale``); a Gemm with ``alpha`` or ``beta`` other than 1 stays
in float, as in ONNX Runtime.

Before that, as ONNX Runtime does on x86, int8 Q -> DQ pairs become uint8
pairs (``QDQS8ToU8Transformer``), and, as its ``ReluQuantFusion`` /
``ClipQuantFusion``, a
``Relu`` or ``Clip`` right before a ``QuantizeLinear`` is dropped when the
quantized range already clamps the same way. A group is fused only when
ONNX Runtime fuses it: 8-bit integer types in the combinations its kernels
take, per-tensor activation parameters, each DQ output read by the group
alone and the float op's output read only by its Q. Everything else is left
as it is and runs in float, as in ONNX Runtime. The DQ -> Q pairs around
data-movement ops (Reshape, Transpose, MaxPool, ...) are left alone: their
float round trip gives the same integers.

Example:
    >>> import numpy as np
    >>> from edgeai.graph import Graph, Node, Value
    >>> from edgeai.graph.qdq_fusion import fuse_qdq
    >>> f, u8 = np.float32, np.uint8
    >>> inits = {"s": np.array(0.1, f), "z": np.array(128, u8)}
    >>> g = Graph.build(
    ...     nodes=[Node("dq_a", "DequantizeLinear", inputs=("a", "s", "z"), outputs=("fa",)),
    ...            Node("dq_b", "DequantizeLinear", inputs=("b", "s", "z"), outputs=("fb",)),
    ...            Node("add", "Add", inputs=("fa", "fb"), outputs=("fc",)),
    ...            Node("q", "QuantizeLinear", inputs=("fc", "s", "z"), outputs=("c",))],
    ...     inputs=[Value("a", np.dtype(u8), (4,)), Value("b", np.dtype(u8), (4,))],
    ...     outputs=[Value("c", np.dtype(u8), (4,))], initializers=inits)
    >>> [(n.domain, n.op_type) for n in fuse_qdq(g).nodes]
    [('com.microsoft', 'QLinearAdd')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeai.graph.ir import Graph, Node

__all__ = ["fuse_qdq"]

MS = "com.microsoft"
_U8, _S8 = np.dtype(np.uint8), np.dtype(np.int8)
# (input, weight, output) type combinations ONNX Runtime's QLinearConv/QLinearMatMul/QGemm take
_GEMM_TYPES = {(_U8, _U8, _U8), (_U8, _S8, _U8), (_S8, _S8, _S8)}
_UNARY = {
    "AveragePool": "QLinearAveragePool",
    "GlobalAveragePool": "QLinearGlobalAveragePool",
    "LeakyRelu": "QLinearLeakyRelu",
    "Sigmoid": "QLinearSigmoid",
    "Softmax": "QLinearSoftmax",
}
_BINARY = {"Add": "QLinearAdd", "Mul": "QLinearMul"}


@dataclass
class _Rewrite:
    graph: Graph
    nodes: list[Node | None]
    new_inits: dict[str, np.ndarray] = field(default_factory=dict)
    retyped: dict[str, np.dtype[Any]] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        live = [n for n in self.nodes if n is not None]
        self.position = {id(n): i for i, n in enumerate(self.nodes) if n is not None}
        self.producer = {o: n for n in live for o in n.outputs if o}
        self.readers: dict[str, list[Node]] = {}
        for n in live:
            for name in (*n.inputs, *n.implicit_inputs()):
                if name:
                    self.readers.setdefault(name, []).append(n)
        self.graph_outputs = set(self.graph.outputs)

    def alive(self, node: Node) -> bool:
        """Whether ``node`` is still in the graph (not replaced or dropped)."""
        return id(node) in self.position

    def put(self, old: Node, new: Node | None) -> None:
        """Replace ``old`` by ``new`` at its place (None: drop it), updating who makes and who reads
        each value in place (a full :meth:`refresh` per rewrite made fusing a model quadratic)."""
        i = self.position.pop(id(old))
        self.nodes[i] = new
        for o in old.outputs:
            if o and self.producer.get(o) is old:
                del self.producer[o]
        for name in {*old.inputs, *old.implicit_inputs()}:
            if name and name in self.readers:
                self.readers[name] = [r for r in self.readers[name] if r is not old]
        if new is not None:
            self.position[id(new)] = i
            for o in new.outputs:
                if o:
                    self.producer[o] = new
            for name in (*new.inputs, *new.implicit_inputs()):
                if name:
                    self.readers.setdefault(name, []).append(new)

    # -- what is known about values -------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in self.new_inits:
            return self.new_inits[name]
        if name in self.graph.overridable:
            return None
        return self.graph.initializers.get(name)

    def dtype(self, name: str) -> np.dtype[Any] | None:
        c = self.const(name)
        if c is not None:
            return c.dtype
        return self.graph.value(name).dtype

    def zero(self, dtype: np.dtype[Any]) -> str:
        name = f"__qdq_fusion_zero_{dtype.name}"
        self.new_inits.setdefault(name, np.zeros((), dtype=dtype))
        return name

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__qdq{self.counter}"


@dataclass
class _Q:
    """A DequantizeLinear feeding the group, or the QuantizeLinear ending it."""

    node: Node | None
    """None for a float weight quantized by the pass itself."""
    data: str
    scale: str
    zero_point: str
    dtype: np.dtype[Any]
    per_tensor: bool
    axis: int


def _qparams(rw: _Rewrite, node: Node, data_dtype: np.dtype[Any] | None) -> _Q | None:
    scale = node.inputs[1] if len(node.inputs) > 1 else ""
    zp = node.inputs[2] if len(node.inputs) > 2 else ""
    s = rw.const(scale)
    z = rw.const(zp) if zp else None
    if s is None or (zp and z is None) or s.dtype != np.float32 or int(node.attrs.get("block_size", 0)):
        return None
    dtype = z.dtype if z is not None else data_dtype
    if dtype is None:
        return None
    if z is None:
        zp = rw.zero(np.dtype(dtype))
    per_tensor = s.size == 1 and s.ndim <= 1
    return _Q(node, node.inputs[0], scale, zp, np.dtype(dtype), per_tensor, int(node.attrs.get("axis", 1)))


def _dq_input(rw: _Rewrite, name: str, consumer: Node) -> _Q | None:
    """The DequantizeLinear making ``consumer``'s input ``name`` (other readers may share it:
    ONNX Runtime gives each consumer its own copy of a shared DQ before fusing)."""
    node = rw.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.domain != "":
        return None
    if name in rw.graph_outputs:
        return None
    return _qparams(rw, node, rw.dtype(node.inputs[0]))


def _q_output(rw: _Rewrite, node: Node) -> _Q | None:
    """The single QuantizeLinear reading ``node``'s only output, if that is all that reads it."""
    if len([o for o in node.outputs if o]) != 1:
        return None
    out = node.outputs[0]
    readers = rw.readers.get(out, [])
    if out in rw.graph_outputs or len(readers) != 1:
        return None
    q = readers[0]
    if q.op_type != "QuantizeLinear" or q.domain != "" or q.inputs[0] != out:
        return None
    code = int(q.attrs.get("output_dtype", 0))
    default = None
    if code:
        from onnx import helper

        default = np.dtype(helper.tensor_dtype_to_np_dtype(code))
    elif len(q.inputs) < 3 or not q.inputs[2]:
        default = _U8
    info = _qparams(rw, q, default)
    if info is None or not info.per_tensor:
        return None
    return info


def _replace(rw: _Rewrite, target: Node, fused: Node, removable: Sequence[Node | None]) -> None:
    """Put ``fused`` where ``target`` was; drop ``target``, the group's Q (``fused`` now makes
    its output) and any DQ of ``removable`` nobody else reads."""
    rw.put(target, fused)
    gone = {id(target)}
    removable = [n for n in removable if n is not None]
    for n in removable:
        if n.op_type == "QuantizeLinear" and id(n) not in gone:
            rw.put(n, None)
            gone.add(id(n))
    for n in removable:
        if id(n) in gone:
            continue
        readers = [r for o in n.outputs for r in rw.readers.get(o, [])]
        if not readers and not any(o in rw.graph_outputs for o in n.outputs):
            rw.put(n, None)
            gone.add(id(n))


# ---------------------------------------------------------------- Relu / Clip


def _drop_redundant_activation(rw: _Rewrite, node: Node) -> bool:
    if node.domain != "" or node.op_type not in ("Relu", "Clip"):
        return False
    src = node.inputs[0]
    q = _q_output(rw, node)
    if q is None or q.dtype not in (_U8, _S8) or src in rw.graph_outputs:
        return False
    zp = int(np.asarray(rw.const(q.zero_point)).reshape(()))
    qmin, qmax = (0, 255) if q.dtype == _U8 else (-128, 127)
    if node.op_type == "Relu":
        if zp != qmin:
            return False
    else:
        lo, hi = _clip_bounds(rw, node)
        if lo is None or hi is None:
            return False
        scale = np.float32(np.asarray(rw.const(q.scale)).reshape(()))
        lower = np.float32(scale * np.float32(qmin - zp))
        upper = np.float32(scale * np.float32(qmax - zp))
        eps = np.finfo(np.float32).eps
        if eps < np.float32(lo - lower) or eps < np.float32(upper - hi):
            return False
    new_q = Node(q.node.name, q.node.op_type, q.node.domain, (src, *q.node.inputs[1:]), q.node.outputs, q.node.attrs)
    rw.put(q.node, new_q)
    rw.put(node, None)
    return True


def _clip_bounds(rw: _Rewrite, node: Node) -> tuple[np.float32 | None, np.float32 | None]:
    opset = int(rw.graph.opsets.get("", 1))
    if opset < 11:
        return np.float32(node.attrs.get("min", -3.4028234663852886e38)), np.float32(
            node.attrs.get("max", 3.4028234663852886e38)
        )
    bounds: list[np.float32 | None] = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = node.inputs[i] if len(node.inputs) > i else ""
        if not name:
            bounds.append(np.float32(default))
            continue
        c = rw.const(name)
        bounds.append(None if c is None or c.size != 1 else np.float32(np.asarray(c).reshape(())))
    return bounds[0], bounds[1]


# ---------------------------------------------------------------------- groups


def _weight(rw: _Rewrite, name: str, node: Node) -> _Q | None:
    """A DQ weight, or, as ONNX Runtime's ``WeightBiasQuantization`` does for Conv and Gemm, a
    float constant quantized here: int8, per tensor, asymmetric over ``[min(w, 0), max(w, 0)]``
    (``scale = range / 255``, ``zp = rint(clamp(-128 - min / scale))``), MLAS QuantizeLinear."""
    dq = _dq_input(rw, name, node)
    if dq is not None:
        return dq
    w = rw.const(name)
    if w is None or w.dtype != np.float32 or w.size == 0:
        return None
    lo = np.float32(min(float(w.min()), 0.0))
    hi = np.float32(max(float(w.max()), 0.0))
    scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255.0))
    zp = np.int8(np.rint(min(max(np.float32(np.float32(-128.0) - lo / scale), np.float32(-128)), np.float32(127))))
    from edgeai.ops.quantized.quantize_linear import quantize_onnx

    base = rw.fresh(f"{name}_weight")
    rw.new_inits[f"{base}_q"] = quantize_onnx(w, scale, zp, np.int8)
    rw.new_inits[f"{base}_scale"] = np.array(scale, np.float32)
    rw.new_inits[f"{base}_zp"] = np.array(zp, np.int8)
    return _Q(None, f"{base}_q", f"{base}_scale", f"{base}_zp", np.dtype(np.int8), True, 0)


def _bias_int32(rw: _Rewrite, name: str, node: Node, x: _Q, w: _Q) -> tuple[str, list[Node]] | None:
    """The int32 bias of a Conv/Gemm group: a DQ of int32 data, or, as ONNX Runtime's
    ``WeightBiasQuantization`` does, a float constant quantized with scale ``x_scale * w_scale``
    (float32), zero point 0, round half to even. Returns (name, DQ nodes to drop) or None."""
    dq = _dq_input(rw, name, node)
    if dq is not None:
        return (dq.data, [dq.node]) if dq.dtype == np.int32 else None
    bias = rw.const(name)
    if bias is None or bias.dtype != np.float32 or bias.ndim != 1:
        return None
    xs = np.asarray(rw.const(x.scale), np.float32).reshape(())
    ws = np.asarray(rw.const(w.scale), np.float32).reshape(-1)
    scale = (xs * ws).astype(np.float32)
    q = np.rint((bias / scale).astype(np.float32)).astype(np.float64)
    q = np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)
    new = rw.fresh(f"{name}_int32")
    rw.new_inits[new] = q
    return new, []


def _fuse_conv(rw: _Rewrite, node: Node) -> bool:
    if len(node.inputs) < 2:
        return False
    x = _dq_input(rw, node.inputs[0], node)
    q = _q_output(rw, node)
    if x is None or q is None or not x.per_tensor:
        return False
    w = _weight(rw, node.inputs[1], node)
    if w is None:
        return False
    if (x.dtype, w.dtype, q.dtype) not in _GEMM_TYPES:
        return False
    if not w.per_tensor:
        wc = rw.const(w.data)
        shape = wc.shape if wc is not None else rw.graph.value(w.data).shape
        if shape is None or w.axis % max(len(shape), 1) != 0:
            return False
    ins = [x.data, x.scale, x.zero_point, w.data, w.scale, w.zero_point, q.scale, q.zero_point]
    removable = [x.node, w.node, q.node]
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = _bias_int32(rw, node.inputs[2], node, x, w)
        if bias is None:
            return False
        ins.append(bias[0])
        removable += bias[1]
    fused = Node(rw.fresh(node.name), "QLinearConv", "", tuple(ins), q.node.outputs, dict(node.attrs))
    _replace(rw, node, fused, removable)
    return True


def _fuse_matmul(rw: _Rewrite, node: Node) -> bool:
    a = _dq_input(rw, node.inputs[0], node)
    b = _dq_input(rw, node.inputs[1], node)
    if a is None or b is None or not a.per_tensor:
        return False
    q = _q_output(rw, node)
    if q is not None and (a.dtype, b.dtype, q.dtype) in _GEMM_TYPES:
        if not b.per_tensor:
            bshape = np.shape(rw.const(b.data)) if rw.const(b.data) is not None else None
            if bshape is None or len(bshape) != 2 or b.axis not in (1, -1):
                return False
        ins = (a.data, a.scale, a.zero_point, b.data, b.scale, b.zero_point, q.scale, q.zero_point)
        fused = Node(rw.fresh(node.name), "QLinearMatMul", "", ins, q.node.outputs)
        _replace(rw, node, fused, [a.node, b.node, q.node])
        return True
    if q is not None or a.dtype not in (_U8, _S8) or b.dtype not in (_U8, _S8) or not b.per_tensor:
        return False
    ins = (a.data, b.data, a.scale, b.scale, a.zero_point, b.zero_point)
    fused = Node(rw.fresh(node.name), "MatMulIntegerToFloat", MS, ins, node.outputs)
    _replace(rw, node, fused, [a.node, b.node])
    return True


def _fuse_gemm(rw: _Rewrite, node: Node) -> bool:
    a = _dq_input(rw, node.inputs[0], node)
    if a is None or not a.per_tensor:
        return False
    if float(node.attrs.get("beta", 1.0)) != 1.0 or float(node.attrs.get("alpha", 1.0)) != 1.0:
        return False
    q = _q_output(rw, node)
    # float weights are quantized only in a fully quantized group (ORT needs the Q too)
    b = _dq_input(rw, node.inputs[1], node) if q is None else _weight(rw, node.inputs[1], node)
    if b is None:
        return False
    out_type = q.dtype if q is not None else a.dtype
    if (a.dtype, b.dtype, out_type) not in _GEMM_TYPES:
        return False
    if not b.per_tensor:
        trans_b = int(node.attrs.get("transB", 0))
        if b.axis % 2 != (0 if trans_b else 1):
            return False
    removable = [a.node, b.node]
    c_name = ""
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = _bias_int32(rw, node.inputs[2], node, a, b)
        if bias is None:
            return False
        c_name = bias[0]
        removable += bias[1]
    ins = [a.data, a.scale, a.zero_point, b.data, b.scale, b.zero_point, c_name]
    attrs = {k: v for k, v in node.attrs.items() if k in ("alpha", "transA", "transB")}
    if q is not None:
        ins += [q.scale, q.zero_point]
        removable.append(q.node)
        outputs = q.node.outputs
    else:
        outputs = node.outputs
    while ins and not ins[-1]:
        ins.pop()
    fused = Node(rw.fresh(node.name), "QGemm", MS, tuple(ins), outputs, attrs)
    _replace(rw, node, fused, removable)
    return True


def _fuse_binary(rw: _Rewrite, node: Node) -> bool:
    a = _dq_input(rw, node.inputs[0], node)
    b = _dq_input(rw, node.inputs[1], node)
    q = _q_output(rw, node)
    if a is None or b is None or q is None or not (a.per_tensor and b.per_tensor):
        return False
    if not (a.dtype == b.dtype == q.dtype and a.dtype in (_U8, _S8)):
        return False
    ins = (a.data, a.scale, a.zero_point, b.data, b.scale, b.zero_point, q.scale, q.zero_point)
    fused = Node(rw.fresh(node.name), _BINARY[node.op_type], MS, ins, q.node.outputs)
    _replace(rw, node, fused, [a.node, b.node, q.node])
    return True


def _fuse_unary(rw: _Rewrite, node: Node) -> bool:
    x = _dq_input(rw, node.inputs[0], node)
    q = _q_output(rw, node)
    if x is None or q is None or not x.per_tensor or x.dtype != q.dtype or x.dtype not in (_U8, _S8):
        return False
    attrs = dict(node.attrs)
    if node.op_type == "Softmax":
        opset = int(rw.graph.opsets.get("", 13))
        attrs = {"axis": int(node.attrs.get("axis", -1 if opset >= 13 else 1)), "opset": opset}
    ins = (x.data, x.scale, x.zero_point, q.scale, q.zero_point)
    fused = Node(rw.fresh(node.name), _UNARY[node.op_type], MS, ins, q.node.outputs, attrs)
    _replace(rw, node, fused, [x.node, q.node])
    return True


def _fuse_concat(rw: _Rewrite, node: Node) -> bool:
    q = _q_output(rw, node)
    if q is None or q.dtype not in (_U8, _S8):
        return False
    ins: list[str] = [q.scale, q.zero_point]
    removable = [q.node]
    for name in node.inputs:
        x = _dq_input(rw, name, node)
        if x is None or not x.per_tensor or x.dtype != q.dtype:
            return False
        ins += [x.data, x.scale, x.zero_point]
        removable.append(x.node)
    fused = Node(rw.fresh(node.name), "QLinearConcat", MS, tuple(ins), q.node.outputs, dict(node.attrs))
    _replace(rw, node, fused, removable)
    return True


_FUSERS = {
    "Conv": _fuse_conv,
    "MatMul": _fuse_matmul,
    "Gemm": _fuse_gemm,
    "Concat": _fuse_concat,
    **dict.fromkeys(_BINARY, _fuse_binary),
    **dict.fromkeys(_UNARY, _fuse_unary),
}


def _int8_pairs_to_uint8(rw: _Rewrite, node: Node) -> bool:
    """ONNX Runtime's ``QDQS8ToU8Transformer`` (on x86): an int8 Q read only by DQs with the
    same parameters becomes a uint8 Q/DQ pair (zero point + 128). The integers shift by 128
    exactly; the QLinear ops fused afterwards see uint8, as in ONNX Runtime, which matters
    where they add the zero point in float (QLinearAdd, QLinearMul, QLinearAveragePool)."""
    if node.op_type != "QuantizeLinear" or node.domain != "" or len(node.inputs) < 3:
        return False
    out = node.outputs[0]
    readers = rw.readers.get(out, [])
    q = _qparams(rw, node, None)
    if q is None or q.dtype != _S8 or not q.per_tensor or not readers or out in rw.graph_outputs:
        return False
    scale = np.asarray(rw.const(q.scale)).reshape(())
    zp = int(np.asarray(rw.const(q.zero_point)).reshape(()))
    for r in readers:
        if r.op_type != "DequantizeLinear" or r.domain != "" or r.inputs[0] != out or len(r.inputs) < 3:
            return False
        d = _qparams(rw, r, None)
        if d is None or d.dtype != _S8 or not d.per_tensor:
            return False
        if np.asarray(rw.const(d.scale)).reshape(()) != scale or int(np.asarray(rw.const(d.zero_point))) != zp:
            return False
    name = f"__qdq_fusion_u8_zp_{zp + 128}"
    rw.new_inits[name] = np.array(zp + 128, dtype=_U8)
    for old in {id(n): n for n in (node, *readers)}.values():  # a reader of ``out`` twice is rewritten once
        new = Node(old.name, old.op_type, old.domain, (*old.inputs[:2], name, *old.inputs[3:]), old.outputs, old.attrs)
        rw.put(old, new)
    rw.retyped[out] = _U8
    return True


def fuse_qdq(graph: Graph) -> Graph:
    """Rewrite ONNX Runtime's QDQ node groups into QLinear ops (see the module docstring).

    Returns ``graph`` itself when there is nothing to fuse. Subgraphs are not rewritten.
    """
    if not any(n.op_type == "DequantizeLinear" for n in graph.nodes):
        return graph
    rw = _Rewrite(graph, list(graph.nodes))
    changed = False
    for node in list(rw.nodes):
        if node is not None:
            changed |= _int8_pairs_to_uint8(rw, node)
    for node in list(rw.nodes):
        if node is not None and rw.alive(node):
            changed |= _drop_redundant_activation(rw, node)
    for node in list(rw.nodes):
        if node is None or node.domain != "" or node.op_type not in _FUSERS:
            continue
        if not rw.alive(node):
            continue
        changed |= _FUSERS[node.op_type](rw, node)
    if not changed:
        return graph
    inits = dict(graph.initializers)
    inits.update(rw.new_inits)
    opsets = dict(graph.opsets)
    if any(n is not None and n.domain == MS for n in rw.nodes):
        opsets.setdefault(MS, 1)
    values = dict(graph.values)
    for name, dtype in rw.retyped.items():
        values[name] = dataclasses.replace(graph.value(name), dtype=dtype)
    return graph.replace(
        nodes=tuple(n for n in rw.nodes if n is not None), initializers=inits, opsets=opsets, values=values
    )
