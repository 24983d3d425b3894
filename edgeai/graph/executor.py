"""Compile an IR graph against the native op registry, and run it.

Compilation happens once per session: every node's op class is looked up
for the model's opset, built once with its attributes and constant inputs
(``OpContext.input_consts``), subgraphs are compiled, and the run loop
becomes a flat list of steps ``(op.run, input slots, output slots, slots to
free)``; an op whose ``bind_static()`` returns ``(function, input positions)``
is called as that function of those inputs alone (the others are constants it
holds: QLinearConv's packed kernel). Constant folding: ``Constant`` nodes, and nodes of the default
domain whose inputs are all constant (initializers or folded values), are
evaluated once here, so the ops after them see those values as constant
inputs (a ``Reshape`` whose shape is computed from constants gets it at
build time). Random ops and ops with subgraphs are never folded; the
``constant_folding=False`` session option turns folding off.

The memory plan: every value lives in a numbered slot (a local variable of the
runner, the steps written out as one Python function), and a slot is cleared
right after the last step that reads it, so an intermediate tensor is
released (or its buffer reused by numpy's allocator) as soon as its last
consumer has run instead of living for the whole run. Graph outputs and
constants are never cleared. Each run has its own slots, so one compiled
graph can run from several threads at once.

Layout: the INT8 convolutions compute in NHWC and hand on NCHW *views* of their
NHWC results (``y.transpose(0, 3, 1, 2)``: NCHW semantics, no copy), but only
where every reader of the value declares ``accepts_nhwc_views`` (the next
convolution then reads the NHWC bytes as they are); the compiler sets each
producer's ``nhwc_views`` accordingly, and graph outputs are returned
C-contiguous. Between ops that both take part, a value goes as the NHWC array itself
(no view made and unmade at every step): an op lists in ``nhwc_raw_inputs`` the input
positions its bound step can take that way and sets ``nhwc_raw_output`` when its bound
step can hand its (single, rank-4) output on that way; where the producer and every
reader of a value (not a graph output) agree, ``bind_static(nhwc_in=positions,
nhwc_out=True/False)`` binds them so (the value's NCHW meaning is
``a.transpose(0, 3, 1, 2)``; a reader must take any 4-D array it is given). Shapes
that onnx's inference leaves out after com.microsoft QLinear ops are filled in for
the ops' ``OpContext.input_values``.

Example:
    >>> import numpy as np
    >>> from edgeai.graph import Graph, Node, Value
    >>> from edgeai.graph.executor import CompiledGraph
    >>> f32 = np.dtype("float32")
    >>> g = Graph.build(
    ...     nodes=[Node("a", "Identity", inputs=("x",), outputs=("t",)),
    ...            Node("b", "Identity", inputs=("t",), outputs=("y",))],
    ...     inputs=[Value("x", f32, (2,))], outputs=[Value("y", f32, (2,))])
    >>> CompiledGraph(g).run({"x": np.ones(2, f32)})
    [array([1., 1.], dtype=float32)]
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeai.errors import EdgeAIError, InferenceError, InputNameError, UnsupportedOpError
from edgeai.graph.ir import Graph, Node, Value
from edgeai.ops._base import Op, OpContext, lookup, resolve_version

__all__ = ["CompiledGraph", "MissingOp", "find_missing_ops", "unsupported_op_error"]

Step = tuple[Callable[..., Any], tuple[int, ...], tuple[int, ...], tuple[int, ...]]

WRITE_OUT_STEPS = 1500
"""Graphs of up to this many steps run through a runner written out as Python source (about 100 ns
a step less per run than a loop); compiling that source costs 25-60 us a step once, so larger graphs
keep the loop."""
PROGRAM_AFTER_RUNS = 2
"""The run of a graph that is recorded to build its programs (:mod:`edgeai.graph.program`): the second,
so that the first inference pays nothing for them and kernels' lazily made state exists."""
PROGRAM_MIN_STEPS = 3
"""Shorter runs of steps (or of kernel calls) stay steps: a program saves about 2 us a step and costs a
compile the first time its model runs anywhere."""
PROGRAM_MAX = 8
"""At most this many programs per graph (the ones of the most kernel calls)."""
PROGRAM_MAX_CALLS = 256
"""At most this many kernel calls compiled into a graph's programs (compiling costs about 40 ms a call
here, once per model and machine, inside the second run: ``edgeai warmup`` pays it ahead)."""
_RECORDING = threading.Lock()  # one recorded run at a time in a process (the recorder is one global)


class MissingOp(tuple[str, str, int, str]):
    """(domain, op_type, opset, node name) of a node no registered op covers."""

    __slots__ = ()

    def __new__(cls, domain: str, op_type: str, opset: int, node: str) -> MissingOp:
        return super().__new__(cls, (domain, op_type, opset, node))

    @property
    def domain(self) -> str:
        return self[0]

    @property
    def op_type(self) -> str:
        return self[1]

    @property
    def opset(self) -> int:
        return self[2]

    @property
    def node(self) -> str:
        return self[3]


def _opset_of(graph: Graph, domain: str) -> int:
    return int(graph.opsets.get(domain, graph.opsets.get("ai.onnx", 1) if domain == "" else 1))


def find_missing_ops(graph: Graph) -> list[MissingOp]:
    """Every node (subgraphs included) whose op and opset no registered class covers."""
    from edgeai.ops import load_all, load_for

    nodes = [(g, node) for g, node in graph.walk()]
    load_for({(node.domain, node.op_type) for _, node in nodes})  # only the modules of these ops
    missing = []
    for g, node in nodes:
        opset = _opset_of(g, node.domain)
        if lookup(node.op_type, node.domain, opset) is None:
            missing.append(MissingOp(node.domain, node.op_type, opset, node.name))
    if missing:  # an op version an out-of-date index did not list: every module, then ask again
        load_all()
        missing = [m for m in missing if lookup(m.op_type, m.domain, m.opset) is None]
    return missing


def unsupported_op_error(missing: Sequence[MissingOp], what: str = "the model") -> UnsupportedOpError:
    """One error listing every missing (domain, op, opset, node), grouped by op."""
    groups: dict[tuple[str, str, int], list[str]] = {}
    for m in missing:
        groups.setdefault((m.domain, m.op_type, m.opset), []).append(m.node)
    lines = []
    for (domain, op_type, opset), nodes in groups.items():
        op = f"{domain}:{op_type}" if domain else op_type
        version = resolve_version(op_type, domain, opset)
        ver = f"opset {opset}" + (f", schema version {version}" if version not in (None, opset) else "")
        if version is None:
            ver = f"opset {opset}, where onnx defines no {op_type}"
        shown = ", ".join(repr(n) for n in nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        lines.append(f"  {op} ({ver}) at node(s) {shown}")
    first = missing[0]
    return UnsupportedOpError(
        f"the native engine does not implement {len(groups)} op(s) used by {what}:\n"
        + "\n".join(lines)
        + "\nRun it with device='onnxruntime' (or 'auto'), or see `edgeai ops` for what native runs.",
        op_type=first.op_type,
        domain=first.domain,
        opset=first.opset,
        node=first.node,
    )


class CompiledGraph:
    """A graph compiled for the native engine (see the module docstring).

    Args:
        graph: the graph (or subgraph) to compile.
        options: session options handed to every op (``OpContext.options``).
        requant_mode: ``"onnx"`` or ``"tflite"``, handed to every op.
        what: how errors name the model.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        options: Mapping[str, Any] | None = None,
        requant_mode: str = "onnx",
        what: str = "the model",
    ) -> None:
        missing = find_missing_ops(graph)
        if missing:
            raise unsupported_op_error(missing, what)
        self.graph = graph
        self._options = dict(options or {})
        self._requant_mode = requant_mode
        self._what = what
        self._subgraphs: dict[int, CompiledGraph] = {}
        self._graph_input_names = frozenset([*graph.inputs, *graph.overridable])  # fed by the caller

        slot_of: dict[str, int] = {"": 0}  # slot 0: an omitted optional input, always None

        def slot(name: str) -> int:
            if name not in slot_of:
                slot_of[name] = len(slot_of)
            return slot_of[name]

        overridable = set(graph.overridable)
        # Initializers a feed may replace are not constants.
        consts: dict[str, Any] = {k: v for k, v in graph.initializers.items() if k not in overridable}
        fed = [*graph.inputs, *graph.overridable, *graph.outer_names]
        for name in fed:
            slot(name)
        fold = bool(self._options.get("constant_folding", True))
        self.folded: list[str] = []
        """Names of the nodes evaluated once at compile time (all their inputs were constant)."""
        self.ops: list[Op] = []
        self._shapes = _quantized_shapes(graph)
        raw_steps: list[tuple[Node, Op, tuple[int, ...], tuple[int, ...]]] = []
        for node in graph.nodes:
            op = self._build(node, consts)
            self.ops.append(op)
            implicit = op.ctx.outer_names
            if node.op_type == "Constant" and node.domain == "" and not node.inputs:
                # Evaluated once here; its output is a constant like an initializer.
                consts[node.outputs[0]] = _as_output(op.run()[0])
                slot(node.outputs[0])
                continue
            if fold and _foldable(node, consts):
                folded = self._try_fold(node, op, consts)
                if folded is not None:
                    for name, value in zip(node.outputs, folded):
                        if name:
                            if isinstance(value, np.ndarray):
                                value.flags.writeable = False  # shared by every run
                            consts[name] = value
                            slot(name)
                    self.folded.append(node.name)
                    continue
            ins = tuple(slot(n) for n in (*node.inputs, *implicit))
            outs = tuple(slot(n) if n else -1 for n in node.outputs)
            raw_steps.append((node, op, ins, outs))

        _enable_nhwc_views(raw_steps)
        nhwc_raw = self.nhwc_raw = _nhwc_raw_values(raw_steps, graph.outputs)
        """Names of the values handed from op to op as NHWC arrays (see the module docstring)."""
        for name in graph.outputs:  # an output may be an initializer no node reads
            slot(name)
        n_slots = len(slot_of) + 1
        dummy = n_slots - 1  # unnamed outputs land here
        self._initial: list[Any] = [None] * n_slots
        for name, arr in consts.items():
            if name in slot_of and name not in overridable:
                self._initial[slot_of[name]] = arr
        for name in graph.overridable:  # default when not fed
            self._initial[slot_of[name]] = graph.initializers[name]
        self._feed_slots = tuple((name, slot_of[name]) for name in fed)
        self._required = tuple(graph.inputs)
        keep = {slot_of[n] for n in graph.outputs if n in slot_of} | {0, dummy}
        keep |= {slot_of[n] for n in consts if n in slot_of}

        last_use: dict[int, int] = {}
        for k, (_, _, ins, _) in enumerate(raw_steps):
            for i in ins:
                last_use[i] = k
        produced_at: dict[int, int] = {}
        for k, (_, _, _, outs) in enumerate(raw_steps):
            for i in outs:
                if i >= 0:
                    produced_at[i] = k
        frees: list[list[int]] = [[] for _ in raw_steps]
        for i, k in {**produced_at, **last_use}.items():
            if i in keep:
                continue
            k = max(k, produced_at.get(i, -1))  # a value never read dies where it is born
            frees[k].append(i)
        self._steps: list[Step] = [
            (
                *_bound(op, ins, _raw_positions(node, nhwc_raw), bool(node.outputs) and node.outputs[0] in nhwc_raw),
                tuple(dummy if i < 0 else i for i in outs),
                tuple(sorted(frees[k])),
            )
            for k, (node, op, ins, outs) in enumerate(raw_steps)
        ]
        self._step_nodes = [node for node, _, _, _ in raw_steps]
        self._step_ops = [op for _, op, _, _ in raw_steps]
        # what run() calls: the steps written out as one Python function (see _RunnerSource), or for
        # a large graph a loop; steps bound by bind_static() return exactly their outputs, unpacked so
        self._runner_code: Any = None
        self._runner_lines: list[int] = []
        self._runner: Callable[[Mapping[str, Any]], Sequence[Any]] = self._run_loop
        bound = [fn != op.run for (fn, _, _, _), (_, op, _, _) in zip(self._steps, raw_steps)]
        self._unpacked = [b and len(outs) == 1 for b, (_, _, outs, _) in zip(bound, self._steps)]
        self._bound = bound
        self._runner_nodes: list[Node] = self._step_nodes  # the node of each step of the runner
        if len(self._steps) <= WRITE_OUT_STEPS:
            source = _RunnerSource(self._steps, bound, self._initial, self._feed_slots, graph.outputs, slot_of)
            self._runner, self._runner_code, self._runner_lines = source.build(self._missing_feed)
        self.programs: list[tuple[int, int, int]] = []
        """``(first step, end step, kernel calls)`` of each segment compiled into a program (see
        :mod:`edgeai.graph.program`): set once the graph has run :data:`PROGRAM_AFTER_RUNS` times."""
        self.program_error: str | None = None
        """Why no program was built where one was tried (per segment), else None."""
        self._program_objects: list[Any] = []
        self._program_countdown = (
            PROGRAM_AFTER_RUNS if self._options.get("programs", True) and self._runner_code is not None else 0
        )
        self._program_lock = threading.Lock()
        self._slot_of = slot_of
        self._output_slots = {n: slot_of[n] for n in graph.outputs if n in slot_of}
        self._output_index = {n: k for k, n in enumerate(graph.outputs)}
        # Outputs that are constants are copied out, so a caller can write to what it gets.
        self._const_outputs = frozenset(n for n in graph.outputs if n in consts)
        self.output_names = list(graph.outputs)

    # -- building -------------------------------------------------------------
    def _build(self, node: Node, consts: Mapping[str, Any]) -> Op:
        opset = _opset_of(self.graph, node.domain)
        cls = lookup(node.op_type, node.domain, opset)
        assert cls is not None  # find_missing_ops checked every node
        for sub in node.subgraphs():
            if id(sub) not in self._subgraphs:
                self._subgraphs[id(sub)] = CompiledGraph(
                    sub, options=self._options, requant_mode=self._requant_mode, what=self._what
                )
        ctx = OpContext(
            node_name=node.name,
            op_type=node.op_type,
            domain=node.domain,
            opset=opset,
            attrs=dict(node.attrs),
            input_consts=tuple(consts.get(n) if n else None for n in node.inputs),
            num_outputs=len(node.outputs),
            requant_mode=self._requant_mode,
            run_subgraph=self.run_subgraph if any(True for _ in node.subgraphs()) else None,
            options=self._options,
            outer_names=node.implicit_inputs(),
            schema_version=resolve_version(node.op_type, node.domain, opset),
            input_values=tuple(self._value(n) if n else None for n in node.inputs),
            output_values=tuple(self._value(n) for n in node.outputs),
            graph_inputs=tuple(bool(n) and n in self._graph_input_names for n in node.inputs),
        )
        try:
            return cls(ctx)
        except EdgeAIError:
            raise  # already says what is wrong (unsupported op, bad model, ...)
        except Exception as exc:
            raise InferenceError(
                f"building node {node.name!r} ({node.op_type}, opset {opset}) of {self._what} failed: {exc}"
            ) from exc

    def _value(self, name: str) -> Value:
        value = self.graph.value(name)
        if value.shape is None and name in self._shapes:
            return dataclasses.replace(value, shape=self._shapes[name], kind="tensor")
        return value

    def _try_fold(self, node: Node, op: Op, consts: Mapping[str, Any]) -> list[Any] | None:
        """The node's outputs computed now, or None to leave it to run time (where any
        error it raises is reported with the node's name)."""
        try:
            results = op.run(*[consts[n] if n else None for n in node.inputs])
        except Exception:
            return None
        if type(results) is not tuple and type(results) is not list:
            return None
        if len(results) < len([o for o in node.outputs if o]):
            return None
        return [_as_output(v) for v in results]

    # -- running --------------------------------------------------------------
    def run_subgraph(self, graph: Graph, feeds: Mapping[str, Any], outer: Mapping[str, Any] | None = None) -> list[Any]:
        """Run one of this graph's (compiled) subgraphs; its outputs in order."""
        compiled = self._subgraphs.get(id(graph))
        if compiled is None:
            compiled = self._subgraphs[id(graph)] = CompiledGraph(
                graph, options=self._options, requant_mode=self._requant_mode, what=self._what
            )
        if outer:
            feeds = {**outer, **feeds}
        return compiled.run(feeds)

    def run(self, feeds: Mapping[str, Any], output_names: Sequence[str] | None = None) -> list[Any]:
        """Run on ``feeds`` (graph inputs, and outer-scope names for a subgraph)."""
        try:
            values = self._countdown_run(feeds) if self._program_countdown else self._runner(feeds)
        except EdgeAIError:
            raise
        except Exception as exc:
            node = self._failed_node(exc.__traceback__)
            if node is None:
                raise
            raise InferenceError(
                f"node {node.name!r} ({node.op_type}) of {self._what} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if output_names and output_names != self.output_names:  # (Session passes every output by name)
            try:
                values = [values[self._output_index[n]] for n in output_names]
            except KeyError as exc:
                raise InputNameError(
                    f"unknown output name {exc.args[0]!r}; the model's outputs are {self.output_names}"
                ) from None
            names: Sequence[str] = output_names
        else:
            names = self.output_names
        outputs = [v if type(v) is np.ndarray and v.flags.c_contiguous else _contiguous(_as_output(v)) for v in values]
        if self._const_outputs:
            outputs = [
                np.array(v) if n in self._const_outputs and isinstance(v, np.ndarray) else v
                for n, v in zip(names, outputs)
            ]
        return outputs

    def _run_loop(self, feeds: Mapping[str, Any]) -> list[Any]:
        """The runner of a graph of more than :data:`WRITE_OUT_STEPS` steps: a loop over the steps
        (the same results and errors as the written-out runner)."""
        slots = self._loop(feeds, None)
        return [slots[self._output_slots[n]] for n in self.output_names]

    def _loop(self, feeds: Mapping[str, Any], calls: list[list[Any]] | None) -> list[Any]:
        """The slots after a loop over the steps; with ``calls``, each step's kernel calls are recorded
        into it (:mod:`edgeai.kernels._record`) and nothing is freed (no buffer is reused, so an address
        names one array)."""
        slots = self._initial.copy()
        for name, i in self._feed_slots:
            try:
                slots[i] = feeds[name]
            except KeyError:
                slots[i] = self._missing_feed(name)
        steps, unpacked, k = self._steps, self._unpacked, -1
        if calls is not None:
            from edgeai.kernels import _record

            recorder = _record.Recorder()
        try:
            for k in range(len(steps)):
                fn, ins, outs, frees = steps[k]
                if calls is None:
                    results = fn(*[slots[i] for i in ins])
                else:
                    _record.RECORD = recorder
                    try:
                        results = fn(*[slots[i] for i in ins])
                    finally:
                        _record.RECORD = None
                    calls.append(recorder.take())
                    frees = ()
                if type(results) is not tuple and type(results) is not list:
                    _results(results)
                if unpacked[k]:
                    (slots[outs[0]],) = results
                else:
                    for i, v in zip(outs, results):
                        slots[i] = v
                for i in frees:
                    slots[i] = None
        except EdgeAIError:
            raise
        except Exception as exc:
            node = self._step_nodes[k]
            raise InferenceError(
                f"node {node.name!r} ({node.op_type}) of {self._what} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return slots

    def _missing_feed(self, name: str) -> Any:
        """What the runner uses for a feed the caller left out: an overridable initializer's value,
        else :class:`InputNameError`."""
        if name in self._required or name in self.graph.outer_names:
            raise InputNameError(f"missing input {name!r}; the graph's inputs are {list(self._required)}")
        return self._initial[self._slot_of[name]]

    def _failed_node(self, tb: Any) -> Node | None:
        """The node whose step raised, from the runner's line in the traceback ``tb``."""
        line = -1
        while tb is not None:
            if tb.tb_frame.f_code is self._runner_code:
                line = tb.tb_lineno
            tb = tb.tb_next
        k = self._runner_lines[line - 1] if 0 < line <= len(self._runner_lines) else -1
        return self._runner_nodes[k] if k >= 0 else None

    # -- programs (edgeai.graph.program) ------------------------------------------
    def _countdown_run(self, feeds: Mapping[str, Any]) -> Sequence[Any]:
        """A run of the first :data:`PROGRAM_AFTER_RUNS`; the last of them, recorded, builds the programs."""
        self._program_countdown = max(0, self._program_countdown - 1)
        if self._program_countdown or not self._program_lock.acquire(blocking=False):
            return self._runner(feeds)
        try:
            if not _RECORDING.acquire(blocking=False):  # another graph records now: the next run
                self._program_countdown = 1
                return self._runner(feeds)
            try:
                return self._recorded_run(feeds)
            except BaseException:
                self._program_countdown = 1  # (the run failed: the next one records)
                raise
            finally:
                _RECORDING.release()
        finally:
            self._program_lock.release()

    def _recorded_run(self, feeds: Mapping[str, Any]) -> list[Any]:
        """One run through the steps with each step's kernel calls recorded (see :meth:`_loop`), then the
        programs of its segments."""
        calls: list[list[Any]] = []
        slots = self._loop(feeds, calls)
        values = [slots[self._output_slots[n]] for n in self.output_names]
        try:
            self._install_programs(slots, calls)
        except Exception as exc:  # never fails the run: the steps stay
            self.program_error = f"{type(exc).__name__}: {exc}"
        return values

    def _install_programs(self, slots: Sequence[Any], calls: Sequence[list[Any]]) -> None:
        from edgeai.graph.program import ProgramUnavailable, build_program, plan_segments, writes_within

        steps = self._steps
        # a step takes part when its op says its bound step only makes recorded kernel calls, and its
        # outputs lie in arrays those calls were handed (a step that took another path this time did not)
        safe = [
            bool(getattr(op, "program_safe", False))
            and bound
            and writes_within(calls[k], [slots[i] for i in outs if i >= 0])
            for k, (op, bound, (_, _, outs, _)) in enumerate(zip(self._step_ops, self._bound, steps))
        ]
        const = {i for i, v in enumerate(self._initial) if v is not None} - {i for _, i in self._feed_slots}
        keep = {self._output_slots[n] for n in self.output_names}
        new_steps, new_nodes, new_bound = list(steps), list(self._step_nodes), list(self._bound)
        try:
            threads = max(1, int(self._options.get("threads") or 1))
        except (TypeError, ValueError):
            threads = 1
        errors: list[str] = []
        built: list[tuple[int, int, int]] = []
        objects: list[Any] = []
        segments = [
            (start, stop, [c for k in range(start, stop) for c in calls[k]])
            for start, stop in plan_segments(safe, PROGRAM_MIN_STEPS)
        ]
        # the longest (each program is one more compile, on the first run ever of its model)
        segments = [s for s in segments if len(s[2]) >= PROGRAM_MIN_STEPS]
        chosen, total = [], 0
        for seg in sorted(segments, key=lambda s: -len(s[2]))[:PROGRAM_MAX]:
            if total + len(seg[2]) <= PROGRAM_MAX_CALLS:
                chosen.append(seg)
                total += len(seg[2])
            else:
                errors.append(f"steps {seg[0]}-{seg[1] - 1}: over PROGRAM_MAX_CALLS ({PROGRAM_MAX_CALLS}) calls")
        for start, stop, records in sorted(chosen, reverse=True):
            produced: list[int] = []
            ins: list[int] = []
            for _, step_ins, outs, _ in steps[start:stop]:
                ins += [i for i in step_ins if i not in produced and i not in ins and i not in const and i != 0]
                produced += [i for i in outs if i not in produced]
            later = {i for _, step_ins, _, _ in steps[stop:] for i in step_ins} | keep
            outs_ = [i for i in produced if i in later]
            fallback = self._segment_steps(start, stop, tuple(ins), tuple(outs_))
            try:
                program = build_program(records, [slots[i] for i in ins], [slots[i] for i in outs_], fallback, threads)
            except ProgramUnavailable as exc:
                errors.append(f"steps {start}-{stop - 1}: {exc}")
                continue
            except Exception as exc:  # a segment that fails to build leaves the others (and the run) alone
                errors.append(f"steps {start}-{stop - 1}: {type(exc).__name__}: {exc}")
                continue
            frees = tuple(sorted({i for _, _, _, fr in steps[start:stop] for i in fr}))
            new_steps[start:stop] = [(program, tuple(ins), tuple(outs_), frees)]
            new_nodes[start:stop] = [self._step_nodes[start]]
            new_bound[start:stop] = [True]
            built.append((start, stop, len(records)))
            objects.append(program)
        self.program_error = "; ".join(errors) or None
        if not built:
            return
        source = _RunnerSource(new_steps, new_bound, self._initial, self._feed_slots, self.graph.outputs, self._slot_of)
        runner, code, lines = source.build(self._missing_feed)
        self._runner_nodes, self._runner_code, self._runner_lines = new_nodes, code, lines
        self._runner = runner
        self.programs = sorted(built)
        self._program_objects = objects[::-1]  # in step order, like programs

    def _segment_steps(
        self, start: int, stop: int, ins: tuple[int, ...], outs: tuple[int, ...]
    ) -> Callable[..., tuple[Any, ...]]:
        """The steps ``[start, stop)`` as one function of the segment's inputs returning its outputs: what a
        program runs for inputs unlike the recorded ones, and checks itself against."""
        steps, nodes, initial, what = self._steps[start:stop], self._step_nodes[start:stop], self._initial, self._what

        def run_steps(*values: Any) -> tuple[Any, ...]:
            env = dict(zip(ins, values))
            for node, (fn, step_ins, step_outs, _) in zip(nodes, steps):
                try:
                    results = fn(*[env[i] if i in env else initial[i] for i in step_ins])
                    if type(results) is not tuple and type(results) is not list:
                        _results(results)
                except EdgeAIError:
                    raise
                except Exception as exc:
                    raise InferenceError(
                        f"node {node.name!r} ({node.op_type}) of {what} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                for i, v in zip(step_outs, results):
                    env[i] = v
            return tuple(env[i] for i in outs)

        return run_steps

    def run_profiled(
        self, feeds: Mapping[str, Any], output_names: Sequence[str] | None = None
    ) -> tuple[list[Any], list[tuple[str, str, float]]]:
        """Like :meth:`run`, and the time each step took: ``(node name, op type, seconds)``.

        A separate loop so that :meth:`run` pays nothing for it.
        """
        import time

        slots = self._initial.copy()
        for name, i in self._feed_slots:
            if name in feeds:
                slots[i] = feeds[name]
        timings: list[tuple[str, str, float]] = []
        clock = time.perf_counter
        for node, (fn, ins, outs, frees) in zip(self._step_nodes, self._steps):
            start = clock()
            try:
                results = fn(*[slots[i] for i in ins])
            except Exception as exc:
                raise InferenceError(
                    f"node {node.name!r} ({node.op_type}) of {self._what} failed: {type(exc).__name__}: {exc}"
                ) from exc
            timings.append((node.name, node.op_type, clock() - start))
            for i, v in zip(outs, results):
                slots[i] = v
            for i in frees:
                slots[i] = None
        names = output_names if output_names else self.output_names
        return [_contiguous(_as_output(slots[self._output_slots[n]])) for n in names], timings

    # -- introspection --------------------------------------------------------
    @property
    def steps(self) -> int:
        """How many ops the run loop calls (``Constant`` nodes are folded away)."""
        return len(self._steps)

    def peak_live_values(self) -> int:
        """The largest number of non-constant values held at once by the memory plan."""
        const = {i for i, v in enumerate(self._initial) if v is not None}
        live: set[int] = {i for _, i in self._feed_slots}
        peak = len(live)
        for _, _, outs, frees in self._steps:
            live |= {i for i in outs if i not in const}
            peak = max(peak, len(live))
            live -= set(frees)
        return peak


# Ops whose result is not a function of their inputs alone: never folded.
_NOT_FOLDABLE = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)


def _foldable(node: Node, consts: Mapping[str, Any]) -> bool:
    if node.domain != "" or node.op_type in _NOT_FOLDABLE or not node.inputs:
        return False
    if any(True for _ in node.subgraphs()):
        return False
    return all(name in consts for name in node.inputs if name)


def _as_output(value: Any) -> Any:
    if isinstance(value, np.ndarray) or value is None or isinstance(value, list):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


def _contiguous(value: Any) -> Any:
    """A graph output as the caller gets it: C-contiguous (an op may have handed on a strided view)."""
    if type(value) is np.ndarray and not value.flags.c_contiguous:
        return np.ascontiguousarray(value)
    return value


def _enable_nhwc_views(raw_steps: Sequence[tuple[Node, Op, tuple[int, ...], tuple[int, ...]]]) -> None:
    """Let an op hand on NCHW views of NHWC arrays where every reader of its outputs takes them.

    An op that can produce such views has an ``nhwc_views`` attribute (False unless set here: its
    results are then C-contiguous); an op that reads them correctly and without a copy declares
    ``accepts_nhwc_views = True``. Graph outputs are made contiguous by :meth:`CompiledGraph.run`.
    """
    readers: dict[str, list[Op]] = {}
    for node, op, _, _ in raw_steps:
        for name in (*node.inputs, *op.ctx.outer_names):
            if name:
                readers.setdefault(name, []).append(op)
    for node, op, _, _ in raw_steps:
        if hasattr(op, "nhwc_views"):
            op.nhwc_views = all(
                getattr(r, "accepts_nhwc_views", False) for name in node.outputs if name for r in readers.get(name, ())
            )


_SAME_SHAPE = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearLeakyRelu", "QLinearSigmoid", "Relu", "Clip"})


def _quantized_shapes(graph: Graph) -> dict[str, tuple[Any, ...]]:
    """Output shapes of the quantized ops onnx's shape inference does not know (com.microsoft
    QLinearAdd/QLinearMul/QLinearConv) and of what follows them, so that the ops of a QOperator
    model see their input shapes when they are built (to size their kernels' threads)."""
    shapes: dict[str, tuple[Any, ...]] = {}

    def shape(name: str) -> tuple[Any, ...] | None:
        known = graph.value(name).shape
        return known if known is not None else shapes.get(name)

    for node in graph.nodes:
        if not node.outputs or not node.outputs[0] or graph.value(node.outputs[0]).shape is not None:
            continue
        ins = [shape(n) if n else None for n in node.inputs]
        out: tuple[Any, ...] | None = None
        if node.op_type in _SAME_SHAPE and ins and ins[0] is not None:
            out = ins[0]
        elif node.op_type in ("QLinearAdd", "QLinearMul") and len(ins) > 3 and ins[0] is not None:
            out = ins[0] if ins[0] == ins[3] else None
        elif node.op_type == "QLinearConv" and len(ins) > 3 and not node.attrs.get("channels_last"):
            out = _conv_shape(node, ins[0], graph.initializers.get(node.inputs[3]))
        if out is not None:
            shapes[node.outputs[0]] = tuple(out)
    return shapes


def _conv_shape(node: Node, x: tuple[Any, ...] | None, w: Any) -> tuple[Any, ...] | None:
    if x is None or w is None or len(x) != 4 or np.ndim(w) != 4:
        return None
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    strides = list(node.attrs.get("strides") or [1, 1])
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # ceil(size / stride)
        same = [-(-x[2 + i] // strides[i]) if isinstance(x[2 + i], int) else None for i in (0, 1)]
        return (x[0], int(np.shape(w)[0]), *same)
    if auto_pad not in ("NOTSET", "VALID"):
        return None
    pads = list(node.attrs.get("pads") or [0] * 4) if auto_pad == "NOTSET" else [0] * 4
    dilations = list(node.attrs.get("dilations") or [1, 1])
    spatial = []
    for i in (0, 1):
        if not isinstance(x[2 + i], int):
            spatial.append(None)
            continue
        span = x[2 + i] + pads[i] + pads[i + 2] - dilations[i] * (np.shape(w)[2 + i] - 1) - 1
        spatial.append(span // strides[i] + 1 if span >= 0 else None)
    return (x[0], int(np.shape(w)[0]), *spatial)


def _nhwc_raw_values(
    raw_steps: Sequence[tuple[Node, Op, tuple[int, ...], tuple[int, ...]]], outputs: Sequence[str]
) -> frozenset[str]:
    """The values handed from op to op as NHWC arrays (see the module docstring): the single output
    of an op with ``nhwc_raw_output``, not a graph output, read only at positions its readers list in
    ``nhwc_raw_inputs`` (a subgraph's outer-scope read never qualifies)."""
    readers: dict[str, list[tuple[Op, int]]] = {}
    for node, op, _, _ in raw_steps:
        for p, name in enumerate(node.inputs):
            if name:
                readers.setdefault(name, []).append((op, p))
        for name in op.ctx.outer_names:
            readers.setdefault(name, []).append((op, -1))
    graph_outputs = set(outputs)
    raw = set()
    for node, op, _, _ in raw_steps:
        if not getattr(op, "nhwc_raw_output", False) or len(node.outputs) != 1:
            continue
        name = node.outputs[0]
        if not name or name in graph_outputs or name not in readers:
            continue
        if all(p in getattr(r, "nhwc_raw_inputs", ()) for r, p in readers[name]):
            raw.add(name)
    return frozenset(raw)


def _raw_positions(node: Node, raw: frozenset[str]) -> frozenset[int]:
    return frozenset(p for p, name in enumerate(node.inputs) if name and name in raw)


def _bound(
    op: Op, ins: tuple[int, ...], nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
) -> tuple[Callable[..., Any], tuple[int, ...]]:
    """``(function, input slots)`` of one step: ``op.run`` over every input, or what the op's
    ``bind_static()`` returns, a function of fewer inputs (the others are constants it holds) and
    the positions of those it reads; it returns a tuple of exactly the op's outputs. Called after
    :func:`_enable_nhwc_views` (a bound function may have fixed the op's layout). ``nhwc_in`` and
    ``nhwc_out``: the inputs and output that go as NHWC arrays (see :func:`_nhwc_raw_values`), which
    the op must then bind."""
    bind = getattr(op, "bind_static", None)
    if nhwc_in or nhwc_out:
        spec = bind(nhwc_in=nhwc_in, nhwc_out=nhwc_out) if bind is not None else None
        if spec is None:
            raise InferenceError(f"{type(op).__name__} declared NHWC arrays in or out but bound no step for them")
    else:
        spec = bind() if bind is not None else None
    if spec is None:
        return op.run, ins
    fn, positions = spec
    return fn, tuple(ins[p] for p in positions)


class _RunnerSource:
    """The run loop of a compiled graph written out as one Python function, ``run(feeds)`` returning
    the tuple of graph outputs: each value is a local variable (``v<slot>``), each step one call
    (``r = f<k>(v3, c7)``, constants and functions are the function's globals), and ``del v<slot>``
    where the memory plan frees a value. Against a loop over the steps that reads and writes a list
    of slots, this drops the per-step unpacking, indexing and inner loops (measured on a chain of
    no-op steps: 177 -> 68 ns a step). Each line of a step records the step, so a failure names its
    node."""

    def __init__(
        self,
        steps: Sequence[Step],
        bound: Sequence[bool],
        initial: Sequence[Any],
        feed_slots: Sequence[tuple[str, int]],
        outputs: Sequence[str],
        slot_of: Mapping[str, int],
    ) -> None:
        self.steps, self.bound, self.initial, self.feed_slots = steps, bound, initial, feed_slots
        self.outputs, self.slot_of = outputs, slot_of

    def build(
        self, missing_feed: Callable[[str], Any]
    ) -> tuple[Callable[[Mapping[str, Any]], tuple[Any, ...]], Any, list[int]]:
        """``(run, its code object, the step of each source line or -1)``."""
        env: dict[str, Any] = {"_results": _results, "_outs": _outs, "_missing": missing_feed}
        lines: list[str] = ["def run(feeds):"]
        line_step: list[int] = [-1]
        defined: set[int] = set()
        fed: set[int] = set()

        def emit(text: str, step: int = -1) -> None:
            lines.append("    " + text)
            line_step.append(step)

        def ref(i: int) -> str:
            if i in defined:
                return f"v{i}"
            if i not in fed and self.initial[i] is not None:
                env[f"c{i}"] = self.initial[i]
                return f"c{i}"
            return "None"

        for name, i in self.feed_slots:
            emit("try:")
            emit(f"    v{i} = feeds[{name!r}]")
            emit("except KeyError:")
            emit(f"    v{i} = _missing({name!r})")
            defined.add(i)
            fed.add(i)
        for k, (fn, ins, outs, frees) in enumerate(self.steps):
            env[f"f{k}"] = fn
            call = f"f{k}({', '.join(ref(i) for i in ins)})"
            if self.bound[k] and len(outs) == 1:  # a bound step returns its one output in a tuple
                emit(f"(v{outs[0]},) = {call}", k)
            else:
                emit(f"r = {call}", k)
                emit("if r.__class__ is not tuple: r = _results(r)", k)
                if len(outs) == 1:
                    emit(f"v{outs[0]} = r[0] if r else None", k)
                elif outs:
                    emit(f"{', '.join(f'v{i}' for i in outs)} = _outs(r, {len(outs)})", k)
                emit("del r", k)  # the memory plan holds: no result outlives its slot through ``r``
            defined.update(outs)
            gone = [i for i in frees if i in defined]
            if gone:
                emit("del " + ", ".join(f"v{i}" for i in gone), k)
                defined.difference_update(gone)
        emit("return (" + "".join(ref(self.slot_of[n]) + ", " for n in self.outputs) + ")")
        code = compile("\n".join(lines) + "\n", "<edgeai compiled graph>", "exec")
        exec(code, env)
        run = env["run"]
        return run, run.__code__, line_step


def _results(results: Any) -> Any:
    """An op's results as the runner takes them: a tuple or list, else TypeError."""
    if type(results) is list:
        return results
    raise TypeError(f"the op returned {type(results).__name__}, not a tuple of outputs")


def _outs(results: Sequence[Any], n: int) -> tuple[Any, ...]:
    """The first ``n`` results, None for those an op left out."""
    got = tuple(results[:n])
    return got + (None,) * (n - len(got))
