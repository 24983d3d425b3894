"""``edgeai.Session``: one API over every on-device runtime.

Example:
    >>> import numpy as np, edgeai
    >>> with edgeai.Session(edgeai.demo.model_path()) as sess:
    ...     x = np.zeros((1, 1, 8, 8), np.float32)
    ...     out = sess.run({"image": x})
    ...     sorted(out)
    ['probabilities']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from edgeai.backends import Executable, get_backend
from edgeai.errors import (
    DeviceNotAvailableError,
    EdgeAIError,
    InferenceError,
    InputError,
    InputNameError,
    InputShapeError,
    InputTypeError,
    PlacementError,
    SessionClosedError,
    UnsupportedOpError,
)
from edgeai.formats import ModelSource, open_model
from edgeai.hardware import Device, devices_for_format, select_device
from edgeai.specs import TensorSpec

__all__ = ["Session"]

_MISSING: Any = object()


class Session:
    """Load a model and run it on the best available device.

    Args:
        model: a file path (``.onnx``; other formats as their backends land),
            the model's bytes, or an ``onnx.ModelProto``.
        device: ``"auto"`` (NPU > GPU > DSP > CPU), a kind (``"cpu"``,
            ``"gpu"``, ``"npu"``, ``"dsp"``), a backend (``"onnxruntime"``,
            ``"native"``), a provider name (``"CUDAExecutionProvider"``), an
            exact device id from :func:`edgeai.devices`, or a ``Device``.
        fallback: when the requested device is absent, run on the CPU instead
            of raising :class:`~edgeai.errors.DeviceNotAvailableError`.
        threads: intra-op threads for the runtime (default: the runtime's own).
        optimization: graph optimization level: ``"none"``, ``"basic"``,
            ``"extended"`` or ``"all"``.
        provider_options: options handed to the chosen runtime's provider.
        key: decryption key for an encrypted model bundle.
        validation: an input-validation policy (``edgeai.security.InputPolicy``)
            checked before every run.
        monitor: ``True`` or an ``edgeai.monitor.Monitor`` to record latency
            and input statistics of every run, without changing results.
        pin: op type or node name to device, e.g. ``{"Softmax": "native"}``:
            those nodes run there (an error if that device cannot run them).
        forbid: devices (ids, kinds or backends) the planner must not use.
        require: a placement contract, e.g. ``{"npu": 0.9}``: at least that
            share of MACs on that kind of device, else
            :class:`~edgeai.errors.PlacementError` before anything runs.
        target: a target profile name (``edgeai.hardware.targets.target_names()``)
            to run as planned for that hardware; needs ``emulate=True`` when the
            hardware is not present.
        emulate: run the target's partitions on this host under the target's
            op and precision limits, the rest on the native engine; the
            placement report marks those devices as emulated.
        profile: time every partition; ``session.placement`` then reports them.
        **options: backend-specific options.

    ``run`` is safe to call from several threads at once.

    Example:
        >>> import numpy as np, edgeai
        >>> sess = edgeai.Session(edgeai.demo.model_path(), device="cpu")
        >>> probs = sess(np.zeros((2, 1, 8, 8), np.float32))["probabilities"]
        >>> probs.shape
        (2, 10)
    """

    def __init__(
        self,
        model: Any,
        device: str | Device = "auto",
        *,
        fallback: bool = False,
        threads: int | None = None,
        optimization: str = "all",
        provider_options: Mapping[str, Any] | None = None,
        key: bytes | str | None = None,
        validation: Any = None,
        monitor: Any = False,
        pin: Mapping[str, str | Device] | None = None,
        forbid: Sequence[str | Device] = (),
        require: Mapping[str, float] | None = None,
        target: str | None = None,
        emulate: bool = False,
        profile: bool = False,
        **options: Any,
    ) -> None:
        if optimization not in ("none", "basic", "extended", "all"):
            raise ValueError(f"optimization must be 'none', 'basic', 'extended' or 'all', not {optimization!r}")
        source = open_model(model)
        if source.format == "bundle":
            source = self._open_bundle(source, key, options)
        self._source: ModelSource = source
        opts = dict(options)
        opts.update(threads=threads, optimization=optimization, provider_options=provider_options)
        opts["profile"] = bool(profile)
        planned = bool(pin or forbid or require or target)
        if planned:
            if source.format != "onnx":
                raise PlacementError(
                    f"pin=, forbid=, require= and target= plan ONNX models; {source.display_name} is "
                    f"{source.format!r}, whose runtime places nodes itself"
                )
            self._device, self._exec = self._load_planned(device, fallback, pin, forbid, require, target, emulate, opts)
        else:
            candidates = devices_for_format(source.format, device)  # device='native': ORT never imported
            if not candidates:
                raise DeviceNotAvailableError(
                    f"no installed runtime can run a {source.format!r} model ({source.display_name}); "
                    f"{_install_hint(source.format)}"
                )
            self._device = select_device(device, candidates, fallback=fallback)
            backend = get_backend(self._device.backend)
            try:
                self._exec = backend.load(source, self._device, opts)
            except UnsupportedOpError as exc:
                # A whole-model load failed on an op: split the model, the native engine
                # taking what the runtime cannot, unless the user asked for one device.
                explicit = isinstance(device, str) and device.lower() not in ("auto",) and not fallback
                if source.format == "tflite" and self._device.backend == "litert" and not explicit:
                    # custom ops LiteRT cannot resolve: LiteRT partitions around native ones
                    from edgeai.placement.partitioned import load_tflite_planned

                    try:
                        self._device, self._exec = load_tflite_planned(source, self._device, opts)
                    except PlacementError as plan_exc:
                        raise exc from plan_exc
                elif source.format != "onnx" or self._device.backend == "native" or explicit:
                    raise
                else:
                    try:
                        self._device, self._exec = self._load_planned(
                            self._device, fallback, None, (), None, None, False, opts
                        )
                    except PlacementError as plan_exc:
                        raise exc from plan_exc
        self._inputs: list[TensorSpec] = list(self._exec.inputs)
        self._outputs: list[TensorSpec] = list(self._exec.outputs)
        self._input_names = [s.name for s in self._inputs]
        self._output_names: list[str] = list(getattr(self._exec, "output_names", [s.name for s in self._outputs]))
        self._spec_by_name = {s.name: s for s in self._inputs}
        self._n_inputs = len(self._inputs)
        # Runtimes that validate feeds themselves (ONNX Runtime) run first and are
        # explained on failure: the common case pays nothing for validation.
        self._trusts_runtime = bool(getattr(self._exec, "validates_inputs", False))
        fast = getattr(self._exec, "run_fast", None)
        self._run_fast = fast if fast is not None and self._trusts_runtime else None
        self._validation = validation
        self._monitor = self._make_monitor(monitor, target)
        # A monitor with record_run() keeps the fast path: it costs one call per run.
        self._fast_monitor = self._monitor if hasattr(self._monitor, "record_run") else None
        plain = self._validation is None and (self._monitor is None or self._fast_monitor is not None)
        # the runtime's own call when nothing else has to happen around it (checked once per run)
        self._fast = self._run_fast if plain else None

    # -- construction helpers -------------------------------------------------
    @staticmethod
    def _open_bundle(source: ModelSource, key: Any, options: dict[str, Any]) -> ModelSource:
        from edgeai.lifecycle.bundle import open_bundle_source

        return open_bundle_source(source, key=key, trusted_keys=options.pop("trusted_keys", None))

    def _load_planned(
        self,
        device: str | Device,
        fallback: bool,
        pin: Mapping[str, str | Device] | None,
        forbid: Sequence[str | Device],
        require: Mapping[str, float] | None,
        target: str | None,
        emulate: bool,
        opts: dict[str, Any],
    ) -> tuple[Device, Any]:
        """Plan the model over the devices (or an emulated target) and compile each partition."""
        from edgeai.formats.onnx_format import io_specs, load_onnx
        from edgeai.graph.onnx_import import import_model_proto
        from edgeai.placement import target_devices
        from edgeai.placement.capability import Capability
        from edgeai.placement.partitioned import PartitionedExecutable
        from edgeai.placement.planner import plan_graph

        source = self._source
        proto = load_onnx(source)
        base = source.path.parent if source.path is not None else None
        graph = import_model_proto(proto, base_dir=base, what=source.display_name)
        if target is not None:
            from edgeai.hardware.targets import load_target

            profile = load_target(target)
            if not emulate:
                raise DeviceNotAvailableError(
                    f"target {target!r} ({profile.title}) is not present on this machine; pass emulate=True "
                    "to run its partitions on this host under its op and precision limits, or use "
                    f"edgeai.plan(model, target={target!r}) to plan for it"
                )
            devs = target_devices(target, emulate=True)
            capability = Capability(graph, {profile.name: profile})
        else:
            present = devices_for_format("onnx")
            chosen = select_device(device, present, fallback=fallback)
            devs = [chosen, *[d for d in present if d.backend == "native" and d.id != chosen.id]]
            if isinstance(device, str) and device.lower() == "auto":
                devs = [chosen, *[d for d in present if d.id != chosen.id]]
            capability = Capability(graph)
        plan = plan_graph(graph, devs, capability=capability, pin=pin, forbid=forbid, require=require)
        main = next((d for d in devs if any(p.device.id == d.id for p in plan.partitions)), devs[0])
        if len(plan.partitions) == 1 and target is None:
            # one device takes everything: compile the original model as it is (the fast path)
            dev = plan.partitions[0].device
            return dev, get_backend(dev.backend).load(source, dev, opts)
        inputs, outputs = io_specs(proto)
        return main, PartitionedExecutable(source, proto, plan, opts, inputs, outputs, main)

    def _make_monitor(self, monitor: Any, target: str | None = None) -> Any:
        if monitor is False or monitor is None:
            return None
        if monitor is True:
            from edgeai.monitor import Monitor

            bundle = self._source.metadata.get("bundle") or {}
            name = bundle.get("name") if isinstance(bundle, dict) else None
            return Monitor(name=name or self._source.display_name, profile=target)
        return monitor

    # -- public properties ----------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs, in model order."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs, in model order."""
        return list(self._outputs)

    @property
    def device(self) -> Device:
        """The device the session was compiled for."""
        return self._device

    @property
    def format(self) -> str:
        """The model's format: ``"onnx"``, ``"tflite"``, ``"pte"``, ``"coreml"``."""
        return self._source.format

    @property
    def placement(self) -> Any:
        """A :class:`~edgeai.placement.report.PlacementReport`: where every node runs."""
        # not cached: after profile=True runs the report carries measured times
        return self._executable().placement()

    @property
    def monitor(self) -> Any:
        """The session's monitor, or ``None`` when monitoring is off."""
        return self._monitor

    # -- running --------------------------------------------------------------
    def run(
        self,
        output_names_or_feeds: Any,
        feeds: Any = _MISSING,
        run_options: Any = None,
    ) -> Any:
        """Run the model.

        Two call forms:

        * ``run(feeds)`` returns a dict of output name to array. ``feeds`` is a
          dict of input name to array, a list in input order, or one array for
          a one-input model.
        * ``run(output_names, feeds)``, ONNX Runtime's form, returns a list of
          arrays (all outputs when ``output_names`` is ``None``).

        Bad feeds raise an :class:`~edgeai.errors.InputError` that names the
        input and the expected spec.
        """
        ort_form = feeds is not _MISSING
        if ort_form:
            names = output_names_or_feeds
        else:
            names = None
            feeds = output_names_or_feeds
        if type(feeds) is not dict:
            feeds = self._normalize(feeds)
        fast = self._fast
        if fast is not None and len(feeds) == self._n_inputs:
            out_names = names if names else self._output_names
            monitor = self._fast_monitor
            try:
                if monitor is None:
                    outs = fast(out_names, feeds, run_options)
                else:
                    t0 = perf_counter()
                    outs = fast(out_names, feeds, run_options)
                    monitor.record_run(perf_counter() - t0, feeds, outs)
            except Exception as exc:
                if monitor is not None:
                    monitor.errors += 1
                if isinstance(exc, EdgeAIError) and not isinstance(exc, InputError):
                    raise  # already clear (closed session, unsupported op, ...)
                raise self._explain(feeds, exc, out_names) from exc
            return outs if ort_form else dict(zip(out_names, outs))
        outs = self._run_checked(feeds, names)
        if ort_form:
            return outs
        return dict(zip(names if names else self._output_names, outs))

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """``session(x)`` or ``session(name=x, ...)``: like ``run(feeds)``."""
        if kwargs:
            if args:
                raise TypeError("pass feeds either positionally or as keywords, not both")
            return self.run(kwargs)  # type: ignore[no-any-return]
        if len(args) == 1:
            return self.run(args[0])  # type: ignore[no-any-return]
        return self.run(list(args))  # type: ignore[no-any-return]

    def _run_checked(self, feeds: dict[str, Any], names: Sequence[str] | None) -> list[np.ndarray]:
        exe = self._executable()
        feeds = self.validate(feeds)
        if self._validation is not None:
            self._validation.check(feeds, self._inputs)
        out_names = list(names) if names else self._output_names
        if self._monitor is not None:
            with self._monitor.measure(feeds) as record:
                outs = exe.run(feeds, out_names)
                record.outputs = dict(zip(out_names, outs))
            return outs
        try:
            return exe.run(feeds, out_names)
        except EdgeAIError:
            raise
        except Exception as exc:
            raise InferenceError(f"running {self._source.display_name} failed: {exc}") from exc

    def _executable(self) -> Executable:
        exe = self._exec
        if exe is None:
            raise SessionClosedError("the session is closed; create a new edgeai.Session")
        return exe

    # -- feeds ----------------------------------------------------------------
    def _normalize(self, feeds: Any) -> dict[str, Any]:
        if isinstance(feeds, Mapping):
            return dict(feeds)
        if isinstance(feeds, (list, tuple)) and (
            len(self._inputs) != 1 or (feeds and isinstance(feeds[0], np.ndarray))
        ):
            if len(feeds) != len(self._inputs):
                raise InputNameError(
                    f"got {len(feeds)} feeds in a list but the model has {len(self._inputs)} "
                    f"inputs: {self._describe_inputs()}"
                )
            return dict(zip(self._input_names, feeds))
        if len(self._inputs) == 1:
            return {self._input_names[0]: feeds}
        raise InputNameError(
            f"a single array was fed but the model has {len(self._inputs)} inputs: "
            f"{self._describe_inputs()}. Pass a dict of name to array."
        )

    def _describe_inputs(self) -> str:
        return "; ".join(str(s) for s in self._inputs)

    def validate(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check feeds against the input specs; return them as numpy arrays.

        Raises :class:`~edgeai.errors.InputNameError`,
        :class:`~edgeai.errors.InputTypeError` or
        :class:`~edgeai.errors.InputShapeError` with the expected spec.
        """
        unknown = [k for k in feeds if k not in self._spec_by_name]
        if unknown:
            raise InputNameError(f"unknown input name(s) {unknown}; the model's inputs are: {self._describe_inputs()}")
        missing = [n for n in self._input_names if n not in feeds]
        if missing:
            raise InputNameError(f"missing input(s) {missing}; the model's inputs are: {self._describe_inputs()}")
        out: dict[str, np.ndarray] = {}
        bound: dict[str, tuple[int, str]] = {}
        for name in self._input_names:
            spec = self._spec_by_name[name]
            value = feeds[name]
            if spec.dtype == np.dtype(object) and spec.shape is None:
                out[name] = value  # a sequence or optional input: its runtime checks it
                continue
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value, dtype=spec.dtype)
                except (TypeError, ValueError) as exc:
                    raise InputTypeError(
                        f"input {name!r} must be an array of {spec}, got {type(value).__name__} "
                        f"that cannot be converted: {exc}"
                    ) from exc
            if value.dtype != spec.dtype:
                raise InputTypeError(
                    f"input {name!r} expects dtype {spec.dtype} ({spec}), got {value.dtype}. "
                    f"Convert it with .astype(np.{spec.dtype})."
                )
            if spec.shape is not None:
                if value.ndim != len(spec.shape):
                    raise InputShapeError(
                        f"input {name!r} expects rank {len(spec.shape)} ({spec}), got an array "
                        f"of shape {value.shape} (rank {value.ndim})"
                    )
                for axis, (want, got) in enumerate(zip(spec.shape, value.shape)):
                    if isinstance(want, int) and want != got:
                        raise InputShapeError(
                            f"input {name!r} expects size {want} on axis {axis} ({spec}), got shape {value.shape}"
                        )
                    if isinstance(want, str):
                        seen = bound.setdefault(want, (got, name))
                        if seen[0] != got:
                            raise InputShapeError(
                                f"dimension {want!r} is {seen[0]} in input {seen[1]!r} but {got} "
                                f"in input {name!r}; inputs sharing a dimension name must agree"
                            )
            out[name] = value
        return out

    def _explain(self, feeds: Any, exc: Exception, out_names: Sequence[str]) -> Exception:
        """Turn a runtime's failure into the clearest edgeai error we can."""
        try:
            self.validate(feeds)
        except InputError as clear:
            return clear
        bad = [n for n in out_names if n not in self._output_names]
        if bad:
            return InputNameError(f"unknown output name(s) {bad}; the model's outputs are: {self._output_names}")
        return InferenceError(f"running {self._source.display_name} failed: {exc}")

    def reset_state(self) -> None:
        """Reset a stateful model's variables (LiteRT resource variables) to their initial values."""
        exe = self._executable()
        reset = getattr(exe, "reset_state", None)
        if reset is None:
            raise InferenceError(f"{self._source.display_name} on {self._device.id} keeps no state to reset")
        reset()

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Release the runtime's resources. Runs already in flight finish; later ones raise."""
        exe, self._exec = self._exec, None  # type: ignore[assignment]
        self._run_fast = self._fast = _closed_run
        self._fast_monitor = None
        if exe is not None:
            exe.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._exec is None else self._device.id
        return f"Session({self._source.display_name!r}, device={state!r}, inputs=[{self._describe_inputs()}])"


def _closed_run(*_: Any) -> Any:
    raise SessionClosedError("the session is closed; create a new edgeai.Session")


def _install_hint(fmt: str) -> str:
    return {
        "tflite": 'install LiteRT: pip install "edgeai[litert]"',
        "pte": 'install ExecuTorch: pip install "edgeai[executorch]"',
        "coreml": 'install coremltools: pip install "edgeai[coreml]"',
    }.get(fmt, "pip install onnxruntime")
