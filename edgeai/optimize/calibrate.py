"""Calibration data: check feeds against the model and hand them to the calibrator.

Calibration takes any iterable of feeds (a dict of input name to array, a list
of arrays in input order, or one array for a one-input model). Every feed is
checked against the model's input specs before calibration starts, so a bad
sample fails fast with the sample's index and what was expected.

Example:
    >>> import numpy as np, edgeai
    >>> from edgeai.optimize.calibrate import CalibrationSet
    >>> images, _ = edgeai.demo.samples()
    >>> calib = CalibrationSet.from_feeds(edgeai.demo.model_path(), [img[None] for img in images])
    >>> len(calib), calib.input_names
    (32, ['image'])
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeai.errors import InputError, InputNameError
from edgeai.optimize._errors import CalibrationError

__all__ = ["CALIBRATION_METHODS", "CalibrationSet", "progress_bar", "quiet_ort_quantization_logs"]

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass
class CalibrationSet:
    """Checked calibration feeds for one model (a list of ``{input name: array}``)."""

    feeds: list[dict[str, np.ndarray]]
    input_names: list[str]

    def __len__(self) -> int:
        return len(self.feeds)

    @classmethod
    def from_feeds(cls, model: Any, data: Iterable[Any]) -> CalibrationSet:
        """Check every feed of ``data`` against ``model``'s inputs (raises on the first bad one)."""
        from edgeai.formats.onnx_format import io_specs
        from edgeai.optimize._model import as_proto

        if data is None:
            raise CalibrationError(
                "static quantization needs calibration data: pass an iterable of feeds "
                "(dicts of input name to array) drawn from the training set"
            )
        if isinstance(data, (np.ndarray, Mapping)):
            raise CalibrationError(
                "calibration data must be an iterable of feeds (one dict or array per sample), "
                f"not a single {type(data).__name__}; wrap a batch as [batch] or split it per sample"
            )
        proto = as_proto(model)
        inputs, _ = io_specs(proto)
        names = [s.name for s in inputs]
        checker = _FeedChecker(inputs)
        feeds: list[dict[str, np.ndarray]] = []
        for index, item in enumerate(data):
            try:
                feeds.append(checker.check(item))
            except InputError as exc:
                raise type(exc)(f"calibration sample {index} does not match the model: {exc}") from exc
        if not feeds:
            raise CalibrationError(
                "the calibration data is empty: pass at least one feed (ideally 100 or more "
                "samples from the training set) so that activation ranges can be measured"
            )
        return cls(feeds, names)

    def head(self, n: int) -> list[dict[str, np.ndarray]]:
        return self.feeds[:n]


class _FeedChecker:
    """The same checks ``edgeai.Session.validate`` makes, without building a runtime session."""

    def __init__(self, specs: list[Any]) -> None:
        self.specs = specs
        self.names = [s.name for s in specs]

    def check(self, item: Any) -> dict[str, np.ndarray]:
        from edgeai.errors import InputShapeError, InputTypeError

        if isinstance(item, Mapping):
            feed = dict(item)
        elif isinstance(item, (list, tuple)) and len(self.names) > 1:
            if len(item) != len(self.names):
                raise InputNameError(f"got {len(item)} arrays but the model has inputs {self.names}")
            feed = dict(zip(self.names, item))
        elif len(self.names) == 1:
            feed = {self.names[0]: item}
        else:
            raise InputNameError(
                f"a single array was given but the model has inputs {self.names}; pass a dict"
            )
        unknown = sorted(set(feed) - set(self.names))
        missing = [n for n in self.names if n not in feed]
        if unknown or missing:
            raise InputNameError(
                f"unknown input(s) {unknown} / missing input(s) {missing}; "
                f"the model's inputs are: {'; '.join(map(str, self.specs))}"
            )
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            value = feed[spec.name]
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value, dtype=spec.dtype)
                except (TypeError, ValueError) as exc:
                    raise InputTypeError(f"input {spec.name!r} cannot be converted to {spec}: {exc}") from exc
            if value.dtype != spec.dtype:
                raise InputTypeError(
                    f"input {spec.name!r} expects dtype {spec.dtype} ({spec}), got {value.dtype}; "
                    f"convert it with .astype(np.{spec.dtype})"
                )
            if spec.shape is not None and (
                value.ndim != len(spec.shape) or not spec.matches_shape(value.shape)
            ):
                raise InputShapeError(f"input {spec.name!r} expects {spec}, got shape {value.shape}")
            out[spec.name] = value
        return out


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar (``advance()`` per step), or a no-op when disabled."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


class _OrtQuantizationLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return record.levelno >= logging.ERROR or "onnxruntime/quantization" not in path


@contextlib.contextmanager
def quiet_ort_quantization_logs() -> Iterator[None]:
    """Drop onnxruntime.quantization's advisory warnings and prints.

    It logs to the root logger and prints calibration chatter to stdout, which
    would corrupt a command's JSON output; edgeai reports what matters itself.
    """
    root = logging.getLogger()
    flt = _OrtQuantizationLogFilter()
    root.addFilter(flt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(flt)


def make_reader(feeds: list[dict[str, np.ndarray]], advance: Any) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over checked feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._it, None)
            if item is not None:
                advance(1)
            return item

        def __len__(self) -> int:
            return len(feeds)

    return _Reader()
