"""The graph IR: ``Graph`` of ``Node``s over named ``Value``s.

Small and immutable where it can be: nodes and graphs are frozen
dataclasses, attribute and value tables are read-only mappings, and
initializer arrays are marked read-only. A pass that rewrites a graph builds
a new one (:meth:`Graph.replace`). No runtime objects live here: attributes
are plain Python values (``int``, ``float``, ``str``, lists, ``np.ndarray``)
and subgraphs (``If``/``Loop``/``Scan`` bodies) are ``Graph`` objects.

Example:
    >>> import numpy as np
    >>> from edgeai.graph import Graph, Node, Value
    >>> g = Graph.build(
    ...     nodes=[Node("relu0", "Relu", inputs=("x",), outputs=("y",))],
    ...     inputs=[Value("x", np.dtype("float32"), ("N", 4))],
    ...     outputs=[Value("y", np.dtype("float32"), ("N", 4))],
    ...     opsets={"": 21},
    ... )
    >>> [n.op_type for n in g.nodes], g.value("x").shape
    (['Relu'], ('N', 4))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeai.specs import Dim, QuantParams

__all__ = ["Graph", "Node", "Value"]


@dataclass(frozen=True, slots=True)
class Value:
    """A named tensor (or sequence/optional of tensors) flowing between nodes.

    ``dtype`` is the element type (``None`` when unknown); ``shape`` keeps
    symbolic dimension names (``"N"``) and ``None`` for unknown dimensions;
    ``shape is None`` means even the rank is unknown. ``kind`` is
    ``"tensor"``, ``"sequence"``, ``"optional"``, ``"map"`` or ``"unknown"``.
    """

    name: str
    dtype: np.dtype[Any] | None = None
    shape: tuple[Dim, ...] | None = None
    quant: QuantParams | None = None
    kind: str = "tensor"

    def with_quant(self, quant: QuantParams | None) -> Value:
        return dataclasses.replace(self, quant=quant)


@dataclass(frozen=True, eq=False)
class Node:
    """One operator application. ``""`` in ``inputs`` marks an omitted optional input."""

    name: str
    op_type: str
    domain: str = ""
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """Attribute name to Python value; subgraph attributes are :class:`Graph` objects."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "domain", "" if self.domain == "ai.onnx" else self.domain)
        if not isinstance(self.attrs, MappingProxyType):
            object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        # found once: the attributes are frozen (asked for every node at import, passes and compile)
        subs: list[Graph] = []
        for value in self.attrs.values():
            if isinstance(value, Graph):
                subs.append(value)
            elif isinstance(value, (list, tuple)):
                subs.extend(v for v in value if isinstance(v, Graph))
        seen: dict[str, None] = {}
        for g in subs:
            for name in g.outer_names:
                seen.setdefault(name, None)
        object.__setattr__(self, "_subgraphs", tuple(subs))
        object.__setattr__(self, "_implicit", tuple(seen))

    def subgraphs(self) -> Iterator[Graph]:
        """The subgraphs held by this node's attributes (If branches, Loop/Scan bodies)."""
        return iter(self._subgraphs)  # type: ignore[attr-defined]

    def implicit_inputs(self) -> tuple[str, ...]:
        """Outer-scope names that this node's subgraphs read (beyond its declared inputs)."""
        return self._implicit  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        op = f"{self.domain}:{self.op_type}" if self.domain else self.op_type
        return f"Node({self.name!r}, {op}, inputs={list(self.inputs)}, outputs={list(self.outputs)})"


@dataclass(frozen=True, eq=False)
class Graph:
    """A computation: nodes in topological order over named values.

    ``inputs`` are the runtime inputs (initializers are not inputs, even when
    the ONNX file also lists them as graph inputs, unless they can be
    overridden: see ``overridable``); ``initializers`` the constant arrays;
    ``values`` what is known of every value; ``outer_names`` the names a
    subgraph reads from its enclosing graphs; ``opsets`` the model's opset
    per domain (``""`` is the default ONNX domain).
    """

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    values: Mapping[str, Value] = field(default_factory=dict)
    initializers: Mapping[str, np.ndarray] = field(default_factory=dict)
    opsets: Mapping[str, int] = field(default_factory=dict)
    outer_names: tuple[str, ...] = ()
    overridable: tuple[str, ...] = ()
    """Initializers that are also listed as graph inputs: a feed may replace them."""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "outer_names", tuple(self.outer_names))
        object.__setattr__(self, "overridable", tuple(self.overridable))
        for name in ("values", "initializers", "opsets", "metadata"):
            mapping = getattr(self, name)
            if not isinstance(mapping, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(mapping)))
        for arr in self.initializers.values():
            if isinstance(arr, np.ndarray) and arr.flags.writeable:
                arr.flags.writeable = False

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(
        cls,
        nodes: Iterable[Node],
        inputs: Iterable[Value],
        outputs: Iterable[Value],
        *,
        initializers: Mapping[str, np.ndarray] | None = None,
        values: Iterable[Value] = (),
        opsets: Mapping[str, int] | None = None,
        name: str = "graph",
        outer_names: Iterable[str] = (),
    ) -> Graph:
        """A graph from ``Value`` lists (the convenient form for hand-built graphs)."""
        inputs, outputs = list(inputs), list(outputs)
        table: dict[str, Value] = {}
        for v in [*values, *inputs, *outputs]:
            table[v.name] = v
        inits = dict(initializers or {})
        for k, arr in inits.items():
            table.setdefault(k, Value(k, arr.dtype, tuple(arr.shape)))
        return cls(
            name=name,
            nodes=tuple(nodes),
            inputs=tuple(v.name for v in inputs),
            outputs=tuple(v.name for v in outputs),
            values=table,
            initializers=inits,
            opsets=dict(opsets or {"": 21}),
            outer_names=tuple(outer_names),
        )

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (the way rewrite passes build new graphs)."""
        return dataclasses.replace(self, **changes)

    def extract(self, node_names: Iterable[str], name: str | None = None) -> Graph:
        """The nodes named ``node_names`` as a graph of their own (a partition).

        Inputs: values the nodes read but neither produce nor hold as
        initializers (outer-scope reads of subgraphs included). Outputs: values
        they produce that nodes outside the subset read, or that are outputs
        of this graph. Initializers the nodes read come along. Raises
        ``KeyError`` naming any node this graph does not have.

        Example:
            >>> import numpy as np
            >>> f = np.dtype("float32")
            >>> g = Graph.build(
            ...     [Node("a", "Relu", inputs=("x",), outputs=("t",)),
            ...      Node("b", "Neg", inputs=("t",), outputs=("y",))],
            ...     [Value("x", f, (2,))], [Value("y", f, (2,))])
            >>> part = g.extract(["b"])
            >>> part.inputs, part.outputs
            (('t',), ('y',))
        """
        wanted = list(dict.fromkeys(node_names))
        by_name = {n.name: n for n in self.nodes}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise KeyError(f"graph {self.name!r} has no node(s) {unknown}")
        chosen = set(wanted)
        nodes = [n for n in self.nodes if n.name in chosen]  # keep the topological order
        produced = {o for n in nodes for o in n.outputs if o}
        reads: dict[str, None] = {}
        for n in nodes:
            for read in (*n.inputs, *n.implicit_inputs()):
                if read:
                    reads.setdefault(read, None)
        inits = {k: self.initializers[k] for k in reads if k in self.initializers and k not in produced}
        inputs = tuple(k for k in reads if k not in produced and k not in self.initializers)
        read_outside: set[str] = set(self.outputs)
        for n in self.nodes:
            if n.name not in chosen:
                read_outside.update(x for x in (*n.inputs, *n.implicit_inputs()) if x)
        outputs = tuple(o for n in nodes for o in n.outputs if o and o in read_outside)
        names = set(inputs) | set(outputs) | set(inits) | produced
        return Graph(
            name=name or f"{self.name}_part",
            nodes=tuple(nodes),
            inputs=inputs,
            outputs=outputs,
            values={k: v for k, v in self.values.items() if k in names},
            initializers=inits,
            opsets=self.opsets,
            overridable=tuple(k for k in self.overridable if k in inits),
            metadata=self.metadata,
        )

    # -- queries --------------------------------------------------------------
    def value(self, name: str) -> Value:
        """What is known about ``name`` (a bare ``Value`` when nothing is)."""
        return self.values.get(name) or Value(name, None, None, kind="unknown")

    def node(self, name: str) -> Node:
        """The node called ``name``; KeyError when there is none."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"graph {self.name!r} has no node {name!r}")

    def producers(self) -> dict[str, Node]:
        """Value name to the node that produces it."""
        return {out: n for n in self.nodes for out in n.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Value name to the nodes that read it (including through subgraphs)."""
        found: dict[str, list[Node]] = {}
        for n in self.nodes:
            for name in (*n.inputs, *n.implicit_inputs()):
                if name:
                    found.setdefault(name, []).append(n)
        return found

    def op_types(self) -> set[tuple[str, str]]:
        """(domain, op_type) of every node, subgraphs included."""
        found: set[tuple[str, str]] = set()
        for n in self.nodes:
            found.add((n.domain, n.op_type))
            for g in n.subgraphs():
                found |= g.op_types()
        return found

    def walk(self) -> Iterator[tuple[Graph, Node]]:
        """Every (graph, node) pair, descending into subgraphs."""
        for n in self.nodes:
            yield self, n
            for g in n.subgraphs():
                yield from g.walk()

    def __repr__(self) -> str:
        return (
            f"Graph({self.name!r}, {len(self.nodes)} nodes, inputs={list(self.inputs)}, outputs={list(self.outputs)})"
        )
