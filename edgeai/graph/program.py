"""Compiled segments: a run of a graph's kernel calls written out as one compiled function.

The native engine runs a graph as a list of Python steps, one per node, each of which checks its input
and calls a numba kernel. On a small model those per-step costs (the call, the checks, the output's
allocation, numba unboxing a dozen arguments: about 2 us a step here) are a fifth of the run. A
*program* removes them: one run of the graph is recorded at the kernel calls
(:mod:`edgeai.kernels._record`), and every maximal run of steps whose work is only those calls (a
*segment*) is written out as one numba function that makes the same calls, with the same arguments,
through the compiled kernels' addresses. The segment then costs one call from Python.

What a program holds:

- the calls: for each, the kernel's compiled entry (its address, looked up in this process from the
  numba dispatcher that ran it, so the program's own code never embeds a kernel: kernels are compiled
  and cached as before, and a program stays valid when they change), and its arguments: scalars as
  constants, arrays as (source, byte offset, shape, strides) with source either one of the segment's
  inputs or the program's *arena*;
- the arena: one byte buffer holding a copy of every other array the calls touch (packed weights,
  scratch, the intermediate tensors), each at a 64-byte aligned offset. Each concurrent run
  takes its own arena from a pool, so runs from several threads never share scratch.

A program is trusted only after it reproduces the step runner bit for bit on two fresh random inputs;
otherwise the graph keeps its steps. Inputs of another shape, dtype or layout than recorded run
through the original steps.

The generated source is written once under the edgeai cache directory (``$EDGEAI_CACHE_DIR``, else
``$XDG_CACHE_HOME/edgeai``, else ``~/.cache/edgeai``), named by a hash of the program, so numba caches
its compiled code like any other kernel's.

Example:
    >>> from edgeai.graph.program import plan_segments
    >>> plan_segments([True, True, False, True, True, True], min_steps=2)
    [(0, 2), (3, 6)]
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Program", "ProgramUnavailable", "build_program", "plan_segments", "programs_dir", "writes_within"]

_VERSION = 1  # of the generated source's layout: part of every program's hash
_SLACK = 256
"""Zero bytes after each buffer in the arena (a kernel's vector read past an array's last element, if
one ever reads past it, meets zeros of the arena, as it met the rest of the original buffer)."""


class ProgramUnavailable(Exception):
    """Why a segment cannot be written out as a program (the graph keeps its steps)."""


def plan_segments(safe: Sequence[bool], min_steps: int = 2) -> list[tuple[int, int]]:
    """The maximal runs ``[start, stop)`` of true entries of ``safe`` of at least ``min_steps`` steps."""
    out, start = [], None
    for k, ok in enumerate([*safe, False]):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            if k - start >= min_steps:
                out.append((start, k))
            start = None
    return out


def _preferred_dir() -> str:
    base = os.environ.get("EDGEAI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "edgeai"
    )
    return os.path.join(base, "programs")


def programs_dir() -> str:
    """Where generated program sources are written (created on first use; a private temporary
    directory when the cache directory cannot be written; programs already in the cache directory
    are still read from there)."""
    global _DIR
    if _DIR is None:
        path = _preferred_dir()
        try:
            os.makedirs(path, exist_ok=True)
            if not os.access(path, os.W_OK):
                raise OSError(path)
        except OSError:
            path = tempfile.mkdtemp(prefix="edgeai-programs-")
        _DIR = path
    return _DIR


_DIR: str | None = None

# -- numba types <-> plain data (the generated source holds the program as a Python literal) ---------------


def _tspec(ty: Any) -> tuple[Any, ...]:
    from numba.core import types
    from numba.np.numpy_support import as_dtype

    if isinstance(ty, types.Array):
        if not ty.aligned:
            raise ProgramUnavailable(f"an unaligned array argument ({ty})")
        return ("a", as_dtype(ty.dtype).str, ty.ndim, ty.layout, not ty.mutable)
    if isinstance(ty, types.NoneType):
        return ("n",)
    if isinstance(ty, types.Boolean):
        return ("b",)
    if isinstance(ty, (types.Integer, types.Float)):
        return ("s", as_dtype(ty).str)
    if isinstance(ty, types.BaseTuple):
        return ("t", tuple(_tspec(t) for t in ty.types))
    raise ProgramUnavailable(f"a kernel argument of type {ty}")  # (an omitted one too: pass it)


def _nbtype(spec: tuple[Any, ...]) -> Any:
    import numba
    from numba.core import types

    kind = spec[0]
    if kind == "a":
        return types.Array(numba.from_dtype(np.dtype(spec[1])), spec[2], spec[3], readonly=spec[4])
    if kind == "n":
        return types.none
    if kind == "b":
        return types.boolean
    if kind == "s":
        return numba.from_dtype(np.dtype(spec[1]))
    if kind == "t":
        return types.BaseTuple.from_types([_nbtype(s) for s in spec[1]])
    raise ValueError(f"no numba type for {spec!r}")


def _scalar(value: Any, spec: tuple[Any, ...]) -> Any:
    """A scalar argument as a literal: ints, bools, None, floats as hex strings (exact, nan and inf too)."""
    kind = spec[0]
    if kind == "n":
        return None
    if kind == "b":
        return bool(value)
    if kind == "s":
        return float(value).hex() if np.dtype(spec[1]).kind == "f" else int(value)
    if kind == "t":
        return tuple(_scalar(v, s) for v, s in zip(value, spec[1]))
    raise ProgramUnavailable(f"a kernel argument {type(value).__name__}")


# -- recording -> program ------------------------------------------------------------------------------------


def _bounds(a: np.ndarray) -> tuple[int, int]:
    from numpy.lib.array_utils import byte_bounds

    lo, hi = byte_bounds(a)
    return int(lo), int(hi)


def _alignment(ptr: int) -> int:
    """The largest power of two up to 64 dividing ``ptr``."""
    return min(ptr & -ptr, 64) if ptr else 64


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _overload(fn: Any, args: tuple[Any, ...]) -> Any:
    """The compile result of the numba dispatcher ``fn`` that ran ``args`` (a read-only array may have
    run the writable version, as :func:`edgeai.kernels.api._bound_entry` binds it)."""
    from numba.core import types
    from numba.core.dispatcher import Dispatcher

    if not isinstance(fn, Dispatcher):
        raise ProgramUnavailable(f"a kernel call to {fn!r}, not a numba dispatcher")
    sig = [fn.typeof_pyval(v) for v in args]
    _, folded = fn._compiler.fold_argument_types(tuple(sig), {})
    cres = fn.overloads.get(tuple(folded))
    if cres is not None:
        return cres
    if any(isinstance(t, types.Array) and not t.mutable for t in sig):
        sig = [t.copy(readonly=False) if isinstance(t, types.Array) and not t.mutable else t for t in sig]
        _, folded = fn._compiler.fold_argument_types(tuple(sig), {})
        cres = fn.overloads.get(tuple(folded))
        if cres is not None:
            return cres
    raise ProgramUnavailable(f"no compiled {fn.__name__} for the recorded argument types")


def writes_within(records: Sequence[tuple[Any, tuple[Any, ...]]], outputs: Sequence[Any]) -> bool:
    """Whether every output of a step lies in the bytes of an array one of its recorded calls was handed
    (else the step made it some other way, and cannot be part of a program)."""
    spans = [(id(_root(a)), *_bounds(a)) for _, args in records for a in args if isinstance(a, np.ndarray) and a.size]
    for v in outputs:
        if v is None:
            continue
        if not isinstance(v, np.ndarray):
            return False
        if not v.size:
            continue
        root, (lo, hi) = id(_root(v)), _bounds(v)
        if not any(r == root and a <= lo and hi <= b for r, a, b in spans):
            return False
    return True


class _Layout:
    """Where each array a recorded call touches lives: in one of the segment's inputs, or in the arena.

    Arrays are placed in two passes: :meth:`add` notes each array (by its root buffer), then
    :meth:`finish` gives every root one arena range covering the bytes used of it, placed so that its
    best-aligned used address lands on a 64-byte boundary. Offsets are then relative to addresses the
    kernels chose (an aligned slice of an over-allocated buffer keeps its alignment), not to this
    process's allocations, so the same model records the same program in every process."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self.inputs = [(*_bounds(v), v.__array_interface__["data"][0]) for v in inputs]
        self.roots: dict[int, list[Any]] = {}  # id(root) -> [root, used lo, used hi, anchor, arena offset]
        self.size = 0

    def add(self, a: np.ndarray) -> tuple[Any, ...]:
        """A reference to ``a``'s first element: ``("in", k, offset)`` or ``("root", id, address)``."""
        lo, hi = _bounds(a)
        ptr = a.__array_interface__["data"][0]
        for k, (ilo, ihi, iptr) in enumerate(self.inputs):
            if ilo <= lo and hi <= ihi:
                return ("in", k, ptr - iptr)
        root = _root(a)
        rlo, rhi = _bounds(root)
        if not (rlo <= lo and hi <= rhi):
            raise ProgramUnavailable("an array outside its base's memory")
        got = self.roots.get(id(root))
        if got is None:
            for ilo, ihi, _ in self.inputs:
                if rlo < ihi and ilo < rhi:
                    raise ProgramUnavailable("a kernel buffer that overlaps an input")
            got = self.roots[id(root)] = [root, lo, hi, ptr, 0]
        got[1], got[2] = min(got[1], lo), max(got[2], hi)
        if (_alignment(ptr), -ptr) > (_alignment(got[3]), -got[3]):
            got[3] = ptr  # the anchor: the best-aligned (then lowest) address used
        return ("root", id(root), ptr)

    def finish(self) -> None:
        """Give each root its arena range."""
        size = 0
        for entry in self.roots.values():
            _, lo, hi, anchor, _ = entry
            # the anchor on a 64-byte boundary, the used range's start at or after `size`
            at = -(-(size + anchor - lo) // 64) * 64  # arena offset of the anchor
            entry[4] = at - (anchor - lo)  # arena offset of the used range's first byte
            size = entry[4] + hi - lo + _SLACK
        self.size = size

    def resolve(self, ref: tuple[Any, ...]) -> tuple[int, int]:
        """(source, byte offset): source -1 is the arena, k >= 0 input k."""
        if ref[0] == "in":
            return ref[1], ref[2]
        _, lo, _, _, off = self.roots[ref[1]]
        return -1, off + ref[2] - lo

    def locate(self, a: np.ndarray) -> tuple[int, int, int]:
        """(arena offset of a's lowest byte, its byte length, offset of its first element from there)
        for an array in the arena (a segment output), after :meth:`finish`."""
        lo, hi = _bounds(a)
        entry = self.roots.get(id(_root(a)))
        if entry is None or not (entry[1] <= lo and hi <= entry[2]):
            raise ProgramUnavailable("a segment output outside the bytes the recorded calls touched")
        return entry[4] + lo - entry[1], hi - lo, a.__array_interface__["data"][0] - lo

    def template(self) -> np.ndarray:
        """The arena's initial bytes: the used range of each root as it is now."""
        arena = np.zeros(self.size, np.uint8)
        for _, lo, hi, _, off in self.roots.values():
            if hi > lo:
                arena[off : off + hi - lo] = np.frombuffer((ctypes.c_char * (hi - lo)).from_address(lo), np.uint8)
        return arena


def _aligned(template: np.ndarray) -> np.ndarray:
    buf = np.empty(template.size + 64, np.uint8)
    start = -buf.__array_interface__["data"][0] % 64
    arena = buf[start : start + template.size]
    arena[:] = template
    return arena


def _array_spec(a: np.ndarray) -> tuple[Any, ...]:
    return ("a", a.dtype.str, a.ndim, "C" if a.flags.c_contiguous else "A", not a.flags.writeable)


def build_spec(
    records: Sequence[tuple[Any, tuple[Any, ...]]], inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
) -> tuple[dict[str, Any], list[Any], np.ndarray, list[tuple[Any, ...]]]:
    """``(spec, compile results, arena template, output layouts)`` of recorded calls.

    ``records``: ``(dispatcher, args)`` in call order; ``inputs``/``outputs``: the segment's input and
    output arrays of that run (still alive, so no address was reused)."""
    layout = _Layout(inputs)
    pending, cres_list = [], []
    for fn, args in records:
        cres = _overload(fn, args)
        restype = cres.signature.return_type
        rspec = _tspec(restype)
        if rspec[0] not in ("n", "b", "s"):
            raise ProgramUnavailable(f"{fn.__name__} returns {restype}")
        argspecs: list[Any] = []
        for ty, value in zip(cres.signature.args, [*args, *([None] * (len(cres.signature.args) - len(args)))]):
            ts = _tspec(ty)
            if ts[0] == "a":
                if not isinstance(value, np.ndarray):
                    raise ProgramUnavailable("an array argument that is not an ndarray")
                shape, strides = tuple(map(int, value.shape)), tuple(map(int, value.strides))
                argspecs.append((ts, [layout.add(value), shape, strides]))
            else:
                argspecs.append((ts, _scalar(value, ts)))
        pending.append((rspec, argspecs))
        cres_list.append(cres)
    for v in outputs:
        if not isinstance(v, np.ndarray):
            raise ProgramUnavailable("a segment output that is not an array")
        if id(_root(v)) not in layout.roots:
            raise ProgramUnavailable("a segment output no recorded kernel call touched")
        if layout.add(v)[0] == "in":
            raise ProgramUnavailable("a segment output that is a view of its input")
    layout.finish()
    calls = tuple(
        (
            rspec,
            tuple(
                (ts, (*layout.resolve(v[0]), v[1], v[2]) if ts[0] == "a" else v)  # (src, offset, shape, strides)
                for ts, v in argspecs
            ),
        )
        for rspec, argspecs in pending
    )
    outs = [(*layout.locate(v), v.dtype, v.shape, v.strides) for v in outputs]
    spec = {"inputs": tuple(_array_spec(v) for v in inputs), "calls": calls}
    return spec, cres_list, layout.template(), outs


# -- the compiled function ---------------------------------------------------------------------------------


def intrinsic_for(spec: dict[str, Any] | str) -> Any:
    """The numba intrinsic ``_program(arena, fptrs, inputs)`` that makes the calls of ``spec`` (or of the
    spec in the file of that path, read only when numba compiles the program: a cached program is
    loaded without it)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.callconv import excinfo_t
    from numba.extending import intrinsic
    from numba.np.arrayobj import populate_array

    got: list[Any] = []

    def calls_of() -> list[Any]:
        if not got:
            if isinstance(spec, str):
                import ast

                with open(spec) as f:
                    loaded = ast.literal_eval(f.read())
            else:
                loaded = spec
            got.append([(_nbtype(r), [(_nbtype(t), t, v) for t, v in args]) for r, args in loaded["calls"]])
        return got[0]

    def value(context: Any, builder: Any, ty: Any, tspec: Any, v: Any, bases: list[Any]) -> Any:
        intp = types.intp
        if tspec[0] == "a":
            src, off, shape, strides = v
            ary = context.make_array(ty)(context, builder)
            addr = builder.add(bases[src + 1], context.get_constant(intp, off))
            data = builder.inttoptr(addr, context.get_data_type(ty.dtype).as_pointer())
            populate_array(
                ary,
                data=data,
                shape=[context.get_constant(intp, s) for s in shape],
                strides=[context.get_constant(intp, s) for s in strides],
                itemsize=context.get_constant(intp, context.get_abi_sizeof(context.get_data_type(ty.dtype))),
                meminfo=None,
            )
            return ary._getvalue()
        if tspec[0] == "n":
            return context.get_dummy_value()
        if tspec[0] == "t":
            items = [value(context, builder, t, s, x, bases) for t, s, x in zip(ty.types, tspec[1], v)]
            return context.make_tuple(builder, ty, items)
        if tspec[0] == "s" and np.dtype(tspec[1]).kind == "f":
            return context.get_constant(ty, float.fromhex(v))
        return context.get_constant(ty, v)

    def flat_array(context: Any, builder: Any, ty: Any, v: Any, bases: list[Any]) -> list[Any] | None:
        """An array argument as the callee's flattened arguments, all constants but the data pointer
        (two instructions, against some thirty for a struct built and taken apart again: the program's
        compile time is mostly its IR); None where the array model is not the expected one."""
        src, off, shape, strides = v
        model = context.data_model_manager[ty]
        names = getattr(model, "_fields", None)
        if tuple(names or ()) != ("meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides"):
            return None
        intp_t = context.get_value_type(types.intp)
        data_t = context.get_data_type(ty.dtype).as_pointer()
        meminfo_t, parent_t = (context.get_value_type(t) for t in model._members[:2])
        nitems = 1
        for d in shape:
            nitems *= d
        itemsize = context.get_abi_sizeof(context.get_data_type(ty.dtype))
        data = builder.inttoptr(builder.add(bases[src + 1], ir.Constant(intp_t, off)), data_t)
        return [
            ir.Constant(meminfo_t, None),
            ir.Constant(parent_t, None),
            ir.Constant(intp_t, nitems),
            ir.Constant(intp_t, itemsize),
            data,
            *[ir.Constant(intp_t, d) for d in shape],
            *[ir.Constant(intp_t, d) for d in strides],
        ]

    def arguments(context: Any, builder: Any, argv: list[Any], bases: list[Any]) -> list[Any]:
        """The callee's flattened arguments (numba's argument packing of each argument's value)."""
        packer = context.call_conv._get_arg_packer([t for t, _, _ in argv])
        flat: list[Any] = []
        for t, spec_, v in argv:
            got = flat_array(context, builder, t, v, bases) if spec_[0] == "a" else None
            if got is None:
                single = context.call_conv._get_arg_packer([t])
                got = list(single.as_arguments(builder, [value(context, builder, t, spec_, v, bases)]))
            flat += got
        want = list(packer.argument_types)
        if len(flat) != len(want) or any(a.type != b for a, b in zip(flat, want)):  # never: the generic packing
            vals = [value(context, builder, t, s, v, bases) for t, s, v in argv]
            flat = list(packer.as_arguments(builder, vals))
        return flat

    @intrinsic
    def _program(typingctx: Any, arena: Any, fptrs: Any, ins: Any) -> Any:
        calls = calls_of()

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            intp_t = context.get_value_type(types.intp)
            arena_ary = context.make_array(signature.args[0])(context, builder, args[0])
            fp = context.make_array(signature.args[1])(context, builder, args[1]).data
            in_types = signature.args[2].types
            in_vals = cgutils.unpack_tuple(builder, args[2], len(in_types))
            bases = [builder.ptrtoint(arena_ary.data, intp_t)] + [
                builder.ptrtoint(context.make_array(t)(context, builder, v).data, intp_t)
                for t, v in zip(in_types, in_vals)
            ]
            cc = context.call_conv
            for k, (resty, argv) in enumerate(calls):
                argtys = [t for t, _, _ in argv]
                fnty = cc.get_function_type(resty, argtys)
                addr = builder.load(builder.gep(fp, [context.get_constant(types.intp, k)]))
                callee = builder.inttoptr(addr, fnty.as_pointer())
                retty = cc.get_return_type(resty).pointee
                ret = cgutils.alloca_once(builder, retty)
                builder.store(cgutils.get_null_value(retty), ret)
                exc = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")
                code = builder.call(callee, [ret, exc, *arguments(context, builder, argv, bases)])
                status = cc._get_return_status(builder, code, builder.load(exc))
                with cgutils.if_unlikely(builder, status.is_error):
                    cc.return_status_propagate(builder, status)
            return context.get_dummy_value()

        return types.none(arena, fptrs, ins), codegen

    return _program


_SOURCE = '''"""A compiled segment of a native-engine graph, generated by edgeai.graph.program (safe to delete)."""

import numba

from edgeai.graph.program import intrinsic_for

_program = intrinsic_for(__file__[:-3] + ".spec")  # the calls, read when numba compiles this file


@numba.njit(cache=True, nogil=True)
def run(arena, fptrs, {params}):
    _program(arena, fptrs, ({params},))
'''

_LOADED: dict[str, Any] = {}
_CODEGEN: list[str] = []


def _codegen_hash() -> str:
    """A hash of this module's source: numba's cache of a program does not see the intrinsic that wrote
    its code, so a changed code generator must name its programs anew."""
    if not _CODEGEN:
        with open(__file__, "rb") as f:
            _CODEGEN.append(hashlib.sha256(f.read()).hexdigest()[:16])
    return _CODEGEN[0]


_LOCK = threading.Lock()


def _runner(spec: dict[str, Any]) -> Any:
    """The numba function of ``spec``, from its generated source file (written once, atomically)."""
    params = ", ".join(f"in{k}" for k in range(len(spec["inputs"])))
    source = _SOURCE.format(params=params)
    text = repr(spec)
    digest = hashlib.sha256(f"{_VERSION}\n{_codegen_hash()}\n{source}\n{text}".encode()).hexdigest()[:24]
    with _LOCK:
        fn = _LOADED.get(digest)
        if fn is not None:
            return fn
        name = f"p_{digest}.py"
        path = os.path.join(_preferred_dir(), name)
        if not (os.path.exists(path) and _spec_is(path[:-3] + ".spec", text)):  # (a read-only cache is read)
            path = os.path.join(programs_dir(), name)
            if not _spec_is(path[:-3] + ".spec", text):  # missing or damaged: its text is known
                _write_once(path[:-3] + ".spec", text, replace=True)
            _write_once(path, source)  # after its spec: a source is never there without it
        name = f"_edgeai_program_{digest}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # numba's cache locates a function by its module
        module_spec.loader.exec_module(module)
        fn = _LOADED[digest] = module.run
        return fn


def _spec_is(path: str, text: str) -> bool:
    try:
        with open(path) as f:
            return f.read() == text
    except OSError:
        return False


def _write_once(path: str, text: str, replace: bool = False) -> None:
    """``text`` into ``path`` atomically (a concurrent writer writes the same text), unless it exists
    (rewriting a source would change the stamp numba's cache checks) or ``replace``."""
    if os.path.exists(path) and not replace:
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # never replaces a file another process wrote meanwhile (same text)
            except FileExistsError:
                pass
            except OSError:  # no hard links here: an atomic replace (the text is the same)
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Program:
    """One compiled segment: ``program(*inputs)`` returns the segment's outputs (fresh arrays laid out as
    the steps' were), or runs ``fallback(*inputs)`` for inputs unlike the recorded ones."""

    def __init__(
        self,
        spec: dict[str, Any],
        cres_list: Sequence[Any],
        template: np.ndarray,
        outputs: Sequence[tuple[Any, ...]],
        inputs: Sequence[np.ndarray],
        fallback: Callable[..., tuple[Any, ...]],
        threads: int = 1,
    ) -> None:
        self.spec = spec
        self._cres = list(cres_list)  # keeps the kernels' code alive
        self.fptrs = np.array([c.library.get_pointer_to_function(c.fndesc.llvm_func_name) for c in cres_list], np.int64)
        if not self.fptrs.all():
            raise ProgramUnavailable("a kernel's compiled entry has no address")
        self._template = template
        self._pool = [_aligned(template)]
        self._outputs = list(outputs)
        self._checks = [(v.dtype, v.shape, v.strides, v.flags.writeable) for v in inputs]
        self._fallback = fallback
        self._threads = threads
        self._fn = _runner(spec)
        self._entry: Any = None

    def _bind(self, inputs: Sequence[np.ndarray]) -> None:
        arena = self._pool[-1]
        sig = tuple(self._fn.typeof_pyval(v) for v in (arena, self.fptrs, *inputs))
        if sig not in self._fn.overloads:
            self._fn.compile(sig)
        self._entry = self._fn.overloads[sig].entry_point

    def takes(self, inputs: Sequence[Any]) -> bool:
        """Whether ``inputs`` have the recorded layout (dtype, shape, strides, writeability)."""
        for v, (dtype, shape, strides, writeable) in zip(inputs, self._checks):
            if not (
                v.__class__ is np.ndarray
                and v.dtype == dtype
                and v.shape == shape
                and v.strides == strides
                and v.flags.writeable == writeable
            ):
                return False
        return True

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        if not self.takes(inputs):
            return self._fallback(*inputs)
        return self.run(inputs)

    def run(self, inputs: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """The compiled calls on ``inputs`` (of the recorded layout: see :meth:`takes`)."""
        pool = self._pool
        try:
            arena = pool.pop()
        except IndexError:  # another thread runs this program now: a fresh arena of its own
            arena = _aligned(self._template)
        try:
            if self._threads > 1:
                from edgeai.kernels.api import _ThreadScope

                with _ThreadScope(self._threads):
                    self._entry(arena, self.fptrs, *inputs)
            else:
                self._entry(arena, self.fptrs, *inputs)
            out = []
            for lo, size, first, dtype, shape, strides in self._outputs:
                buf = arena[lo : lo + size].copy()
                out.append(np.ndarray(shape, dtype, buf, first, strides))
        finally:
            pool.append(arena)
        return tuple(out)


def _random_like(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fresh array of v's dtype, shape, strides and writeability (the layout a program was recorded
    for), in a buffer of its own, with values over v's range."""
    lo, hi = _bounds(v)
    n = (hi - lo) // v.itemsize
    if v.dtype.kind == "f":
        fin = v[np.isfinite(v)] if v.size else v
        mu, sd = (float(fin.mean()), float(fin.std()) or 1.0) if fin.size else (0.0, 1.0)
        flat = (rng.standard_normal(n) * sd + mu).astype(v.dtype)
    elif v.dtype.kind in "iu":
        info = np.iinfo(v.dtype)
        flat = rng.integers(info.min, info.max, n, dtype=v.dtype, endpoint=True)
    elif v.dtype.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    else:
        raise ProgramUnavailable(f"a segment input of dtype {v.dtype}")
    out = np.ndarray(v.shape, v.dtype, flat, v.__array_interface__["data"][0] - lo, v.strides)
    out.flags.writeable = v.flags.writeable
    return out


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.strides == b.strides
        and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    )


def build_program(
    records: Sequence[tuple[Any, tuple[Any, ...]]],
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    fallback: Callable[..., tuple[Any, ...]],
    threads: int = 1,
    checks: int = 2,
) -> Program:
    """A :class:`Program` of a recorded segment, checked bit for bit against ``fallback`` (the
    original steps) on ``checks`` random inputs; raises :class:`ProgramUnavailable` if it cannot be
    built or does not agree."""
    if not all(isinstance(v, np.ndarray) for v in inputs):
        raise ProgramUnavailable("a segment input that is not an array")
    spec, cres_list, template, outs = build_spec(records, inputs, outputs)
    program = Program(spec, cres_list, template, outs, inputs, fallback, threads)
    program._bind(inputs)
    rng = np.random.default_rng(0x5EED)
    for _ in range(checks):
        fresh = [_random_like(v, rng) for v in inputs]
        if not program.takes(fresh):
            raise ProgramUnavailable("a fresh input of the recorded layout is not taken")  # never: a bug
        want = fallback(*fresh)
        got = program.run(fresh)
        if len(want) != len(got) or not all(_same(w, g) for w, g in zip(want, got)):
            raise ProgramUnavailable("the compiled segment does not reproduce the steps on a random input")
    return program
