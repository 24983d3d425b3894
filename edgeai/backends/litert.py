"""LiteRT (TensorFlow Lite) backend: ``.tflite`` models through the same Session.

The interpreter comes from the first of these that imports: ai-edge-litert
(``pip install "edgeai[litert]"``), tflite-runtime (``edgeai[tflite]``, needs
numpy<2), ``tensorflow.lite``; ``session.placement`` and the device's
properties say which one ran.

Devices are delegates. LiteRT applies XNNPACK to every CPU model by default:
that is the ``litert:cpu`` device, reported as such. Other delegates (GPU,
NNAPI, Hexagon, Edge TPU, Core ML) are listed only when their shared library
is found on the usual library paths or named in ``EDGEAI_TFLITE_DELEGATES``
(``kind=path`` entries separated by ``os.pathsep``, kind one of gpu, nnapi,
hexagon, edgetpu, coreml); they are loaded with ``load_delegate``. A library
that cannot be loaded raises :class:`~edgeai.errors.DeviceNotAvailableError`
before LiteRT's own wrapper is touched (which otherwise prints a confusing
``AttributeError`` from ``Delegate.__del__``).

Quantized inputs and outputs carry their TFLite quantization parameters;
with ``quantize_io=True`` float feeds are quantized for the user and outputs
dequantized, with TFLite's formulas (``q = round(x / scale) + zero_point``,
rounding half away from zero, saturating; ``x = scale * (q - zero_point)``).
An input stored with a placeholder dimension (``shape_signature`` -1) is
resized to each fed shape. Models that keep state in resource variables keep
it across runs; ``Session.reset_state()`` clears it.

Example:
    >>> import edgeai
    >>> from edgeai.backends.litert import BACKEND
    >>> BACKEND.available() in (True, False)
    True
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.backends import Support
from edgeai.errors import DeviceNotAvailableError, InferenceError, ModelFormatError, UnsupportedOpError
from edgeai.formats import ModelSource
from edgeai.hardware import Device, DeviceKind
from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport
from edgeai.specs import QuantParams, TensorSpec

__all__ = ["BACKEND", "DELEGATE_LIBRARIES", "LiteRTBackend", "find_delegates"]

_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow.lite"),
)

# delegate kind -> (device kind, vendor, library file names searched on the usual paths)
DELEGATE_LIBRARIES: dict[str, tuple[DeviceKind, str, tuple[str, ...]]] = {
    "gpu": (DeviceKind.GPU, "Google", ("libtensorflowlite_gpu_delegate.so", "libLiteRtGpuAccelerator.so")),
    "nnapi": (DeviceKind.NPU, "Android", ("libnnapi_delegate.so",)),
    "hexagon": (DeviceKind.DSP, "Qualcomm", ("libhexagon_delegate.so", "libhexagon_interface.so")),
    "edgetpu": (DeviceKind.NPU, "Google", ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll")),
    "coreml": (DeviceKind.NPU, "Apple", ("libtensorflowlite_coreml_delegate.dylib",)),
}

_SEARCH_DIRS = ("/usr/lib", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/opt/lib")


def _interpreter_module() -> tuple[Any, str]:
    for module, label in _INTERPRETERS:
        try:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                continue
            return importlib.import_module(module), label
        except ImportError:
            continue
    from edgeai.errors import MissingDependencyError

    raise MissingDependencyError(
        'no TFLite interpreter is installed: pip install "edgeai[litert]" (ai-edge-litert), '
        'or "edgeai[tflite]" (tflite-runtime, needs numpy<2)'
    )


def find_delegates() -> dict[str, Path]:
    """Delegate kind -> library path, from ``EDGEAI_TFLITE_DELEGATES`` and the usual paths."""
    found: dict[str, Path] = {}
    env = os.environ.get("EDGEAI_TFLITE_DELEGATES", "")
    for entry in filter(None, env.split(os.pathsep)):
        kind, _, path = entry.partition("=")
        if not path:
            kind, path = "", kind
            name = Path(path).name
            kind = next((k for k, (_, _, libs) in DELEGATE_LIBRARIES.items() if name in libs), name)
        found[kind.lower()] = Path(path)
    dirs = [*filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)), *_SEARCH_DIRS]
    for kind, (_, _, libs) in DELEGATE_LIBRARIES.items():
        if kind in found:
            continue
        for d in dirs:
            hit = next((Path(d) / lib for lib in libs if (Path(d) / lib).is_file()), None)
            if hit is not None:
                found[kind] = hit
                break
    return found


def _quant(detail: dict[str, Any]) -> QuantParams | None:
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), dtype=np.float64)
    zps = np.asarray(q.get("zero_points", []), dtype=np.int64)
    if scales.size == 0 or not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return None
    return QuantParams(
        scale=tuple(float(s) for s in scales),
        zero_point=tuple(int(z) for z in (zps if zps.size else np.zeros_like(scales, dtype=np.int64))),
        axis=int(q.get("quantized_dimension", 0)) if scales.size > 1 else None,
        dtype=np.dtype(detail["dtype"]),
    )


def _spec(detail: dict[str, Any]) -> TensorSpec:
    sig = detail.get("shape_signature")
    shape_src = sig if sig is not None and len(sig) else detail["shape"]
    shape = tuple(None if int(d) < 0 else int(d) for d in shape_src)
    return TensorSpec(detail["name"], np.dtype(detail["dtype"]), shape, _quant(detail))


def quantize_tflite(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """TFLite's quantization: ``round(x / scale) + zp`` with round-half-away-from-zero, saturated."""
    info = np.iinfo(q.dtype)
    scale = np.asarray(q.scale, dtype=np.float32)
    zp = np.asarray(q.zero_point, dtype=np.int64)
    if q.axis is not None and len(q.scale) > 1:
        shape = [1] * x.ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    scaled = np.asarray(x, dtype=np.float32) / scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded + zp, info.min, info.max).astype(q.dtype)


def dequantize_tflite(q_values: np.ndarray, q: QuantParams) -> np.ndarray:
    """TFLite's dequantization: ``scale * (q - zp)`` in float32."""
    scale = np.asarray(q.scale, dtype=np.float32)
    zp = np.asarray(q.zero_point, dtype=np.int64)
    if q.axis is not None and len(q.scale) > 1:
        shape = [1] * q_values.ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q_values.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


class LiteRTBackend:
    """The ``litert`` backend. See the module docstring."""

    name = "litert"
    formats = ("tflite",)

    def available(self) -> bool:
        return any(importlib.util.find_spec(m.split(".")[0]) is not None for m, _ in _INTERPRETERS)

    def devices(self) -> list[Device]:
        from edgeai.backends.onnxruntime import cpu_name

        _, label = _interpreter_module()
        found = [
            Device(
                id="litert:cpu",
                kind=DeviceKind.CPU,
                name=cpu_name(),
                vendor="Google",
                backend=self.name,
                provider="XNNPACK (LiteRT's default CPU delegate)",
                properties={"interpreter": label},
            )
        ]
        for kind, path in find_delegates().items():
            dkind, vendor, _ = DELEGATE_LIBRARIES.get(kind, (DeviceKind.NPU, "unknown", ()))
            found.append(
                Device(
                    id=f"litert:{kind}",
                    kind=dkind,
                    name=f"LiteRT {kind} delegate",
                    vendor=vendor,
                    backend=self.name,
                    provider=str(path),
                    properties={"interpreter": label, "library": str(path)},
                )
            )
        return found

    def supports(self, node: Any, device: Device) -> Support:
        if device.backend != self.name:
            return Support(False, f"{device.id} is not a LiteRT device")
        return Support(True, "whole-model load; LiteRT delegates claim nodes themselves")

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> LiteRTExecutable:
        return LiteRTExecutable(source, device, options)


def _load_delegate(module: Any, device: Device, options: dict[str, Any]) -> Any:
    library = device.properties.get("library") or device.provider
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        raise DeviceNotAvailableError(
            f"the LiteRT delegate library {library!r} for {device.id} cannot be loaded ({exc}); "
            "install the delegate or fix EDGEAI_TFLITE_DELEGATES"
        ) from exc
    try:
        return module.load_delegate(str(library), dict(options.get("delegate_options") or {}))
    except (ValueError, RuntimeError, AttributeError) as exc:
        raise DeviceNotAvailableError(f"LiteRT could not create the delegate from {library!r}: {exc}") from exc


class LiteRTExecutable:
    """A ``.tflite`` model in one LiteRT interpreter."""

    validates_inputs = True
    """LiteRT's ``set_tensor`` checks dtype and shape; Session explains its refusals."""

    def __init__(self, source: ModelSource, device: Device, options: dict[str, Any]) -> None:
        module, self.interpreter_name = _interpreter_module()
        self.device = device
        self._what = source.display_name
        self._quantize_io = bool(options.get("quantize_io", False))
        delegates = [] if device.id == "litert:cpu" else [_load_delegate(module, device, options)]
        kwargs: dict[str, Any] = {"experimental_delegates": delegates or None}
        if options.get("threads"):
            kwargs["num_threads"] = int(options["threads"])
        model_arg = (
            {"model_path": str(source.path)} if source.path is not None else {"model_content": source.read_bytes()}
        )
        self._make = lambda: module.Interpreter(**model_arg, **kwargs)
        try:
            self._interp = self._make()
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            msg = str(exc)
            if "custom op" in msg.lower() or "unresolved" in msg.lower() or "didn't find op" in msg.lower():
                raise UnsupportedOpError(f"LiteRT cannot run {self._what}: {msg.strip()}") from exc
            raise ModelFormatError(f"LiteRT could not load {self._what}: {msg.strip()}") from exc
        self._lock = threading.Lock()
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        raw_inputs = [_spec(d) for d in self._in]
        raw_outputs = [_spec(d) for d in self._out]
        self.raw_inputs, self.raw_outputs = raw_inputs, raw_outputs
        if self._quantize_io:
            self.inputs = [self._float_spec(s) for s in raw_inputs]
            self.outputs = [self._float_spec(s) for s in raw_outputs]
        else:
            self.inputs, self.outputs = raw_inputs, raw_outputs
        self.output_names = [s.name for s in self.outputs]
        self._shapes = [tuple(d["shape"]) for d in self._in]
        self._refresh_fast()

    def run_fast(self, output_names: Sequence[str], feeds: dict[str, Any], run_options: Any = None) -> list[Any]:
        """The common case with nothing to convert: set, invoke, get. Anything else takes :meth:`run`.

        Calls the interpreter's pybind methods directly: the Python wrappers only
        add a frame each, and ``invoke``'s safety check guards numpy views of
        internal buffers, which edgeai never hands out (``GetTensor`` copies).
        """
        if self._quantize_io:
            return self.run(feeds, output_names)
        with self._lock:
            interp = self._interp
            if interp is None:
                from edgeai.errors import SessionClosedError

                raise SessionClosedError("the session is closed; create a new edgeai.Session")
            # not kept on self: LiteRT counts references to it to detect live views
            native = interp._interpreter if self._direct else _WrapperCalls(interp)
            one = self._one
            if one is not None:  # one input, one output: no loops
                name, index, shape, out = one
                value = feeds[name]
                if type(value) is np.ndarray and value.shape == shape:
                    native.SetTensor(index, value)
                    native.Invoke()
                    if output_names == self.output_names:
                        return [native.GetTensor(out, 0)]
                    return [native.GetTensor(self._out_index[n], 0) for n in output_names]
            else:
                for name, index, shape in self._fast_in:
                    value = feeds[name]
                    if type(value) is not np.ndarray or value.shape != shape:
                        break
                    native.SetTensor(index, value)
                else:
                    native.Invoke()
                    out_index = self._out_index
                    return [native.GetTensor(out_index[n], 0) for n in output_names]
            del native, interp
        return self.run(feeds, output_names)

    def _refresh_fast(self) -> None:
        self._direct = hasattr(getattr(self._interp, "_interpreter", None), "SetTensor")
        self._fast_in = [(d["name"], d["index"], shape) for d, shape in zip(self._in, self._shapes)]
        self._out_index = {d["name"]: d["index"] for d in self._out}
        one_out = self._out_index[self.output_names[0]] if len(self.output_names) == 1 else None
        self._one = (*self._fast_in[0], one_out) if len(self._fast_in) == 1 and one_out is not None else None

    @staticmethod
    def _float_spec(spec: TensorSpec) -> TensorSpec:
        if spec.quant is None:
            return spec
        return TensorSpec(spec.name, np.dtype(np.float32), spec.shape, spec.quant)

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        with self._lock:
            interp = self._interp
            if interp is None:
                from edgeai.errors import SessionClosedError

                raise SessionClosedError("the session is closed; create a new edgeai.Session")
            values = []
            resized = False
            for k, (detail, spec) in enumerate(zip(self._in, self.raw_inputs)):
                value = feeds[detail["name"]]
                if not isinstance(value, np.ndarray):  # Python lists and scalars: convert, as ONNX Runtime does
                    value = np.asarray(value, dtype=None if self._quantize_io else spec.dtype)
                if self._quantize_io and spec.quant is not None and value.dtype.kind == "f":
                    value = quantize_tflite(value, spec.quant)
                if tuple(value.shape) != self._shapes[k]:
                    try:
                        interp.resize_tensor_input(detail["index"], list(value.shape), strict=True)
                    except (ValueError, RuntimeError) as exc:
                        from edgeai.errors import InputShapeError

                        raise InputShapeError(
                            f"input {detail['name']!r} cannot take shape {value.shape}: the model fixes "
                            f"{tuple(spec.shape or ())} ({exc})"
                        ) from exc
                    self._shapes[k] = tuple(value.shape)
                    resized = True
                values.append(np.ascontiguousarray(value))  # a wrong dtype is refused by set_tensor
            if resized:
                interp.allocate_tensors()
                self._refresh_fast()
            for detail, value in zip(self._in, values):
                interp.set_tensor(detail["index"], value)
            try:
                interp.invoke()
            except (ValueError, RuntimeError) as exc:
                raise InferenceError(f"LiteRT failed running {self._what}: {exc}") from exc
            wanted = list(output_names) if output_names else self.output_names
            by_name = {d["name"]: (d, s) for d, s in zip(self._out, self.raw_outputs)}
            outs = []
            for name in wanted:
                detail, spec = by_name[name]
                value = interp.get_tensor(detail["index"])  # a copy
                if self._quantize_io and spec.quant is not None:
                    value = dequantize_tflite(value, spec.quant)
                outs.append(value)
            return outs

    def reset_state(self) -> None:
        """Reset the model's state to its initial values.

        ``reset_all_variables`` resets variable tensors but not resource
        variables initialised by CALL_ONCE (streaming models); a fresh
        interpreter on the same model (and delegates) re-runs the init subgraph.
        """
        with self._lock:
            fresh = self._make()
            fresh.allocate_tensors()
            self._interp = fresh
            self._in = fresh.get_input_details()
            self._out = fresh.get_output_details()
            self._shapes = [tuple(d["shape"]) for d in self._in]
            self._refresh_fast()

    def placement(self) -> PlacementReport:
        try:
            ops = self._interp._get_ops_details()
        except AttributeError:  # older interpreters
            ops = []
        delegate = "XNNPACK" if self.device.id == "litert:cpu" else self.device.id
        originals = [op for op in ops if op.get("op_name") != "DELEGATE"]
        producer = {int(t): op["index"] for op in originals for t in op.get("outputs", [])}
        claimed: dict[int, int] = {}
        for d in (op for op in ops if op.get("op_name") == "DELEGATE"):
            # the original nodes between a DELEGATE node's inputs and outputs are the ones it took
            stop = {int(t) for t in d.get("inputs", [])}
            todo = [int(t) for t in d.get("outputs", [])]
            while todo:
                t = todo.pop()
                if t in stop or t not in producer or producer[t] in claimed:
                    continue
                claimed[producer[t]] = d["index"]
                node = next(o for o in originals if o["index"] == producer[t])
                todo.extend(int(i) for i in node.get("inputs", []) if int(i) >= 0)
        nodes = []
        for op in originals:
            name, index = op.get("op_name", "?"), op["index"]
            if index in claimed:
                reason = f"claimed by the {delegate} delegate (DELEGATE node {claimed[index]})"
            else:
                reason = "LiteRT builtin kernel (no delegate claimed it)"
            nodes.append(NodePlacement(name=f"{name}_{index}", op_type=name, device=self.device.id, reason=reason))
        part = PartitionInfo(
            index=0,
            device=self.device.id,
            device_kind=self.device.kind.value,
            backend="litert",
            provider=self.device.provider,
            nodes=[n.name for n in nodes],
        )
        return PlacementReport(
            model=self._what,
            nodes=nodes,
            partitions=[part],
            source=f"LiteRT interpreter op details ({self.interpreter_name})",
        )

    def close(self) -> None:
        with self._lock:
            self._interp = None


class _WrapperCalls:
    """The pybind method names over an interpreter that exposes only the Python API."""

    def __init__(self, interp: Any) -> None:
        self.SetTensor = interp.set_tensor
        self.Invoke = interp.invoke
        self.GetTensor = interp.get_tensor


BACKEND = LiteRTBackend()
