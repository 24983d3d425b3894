"""Model formats: recognise what a model is before any runtime sees it.

:func:`open_model` turns whatever the user passed (a path, bytes, an
``onnx.ModelProto``) into a :class:`ModelSource`, checking the things that
would otherwise crash a runtime or give a confusing message: a missing path,
an empty or truncated file, an unknown format.

Example:
    >>> from edgeai.formats import open_model
    >>> import edgeai
    >>> open_model(edgeai.demo.model_path()).format
    'onnx'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeai.errors import ModelFormatError, ModelNotFoundError

__all__ = ["FORMATS", "ModelSource", "open_model", "sniff_format"]

FORMATS = ("onnx", "tflite", "pte", "coreml", "bundle")


@dataclass
class ModelSource:
    """A model as received: its format and where its bytes are.

    ``path`` is set when the model came from a file (runtimes that can mmap a
    file, or that resolve external data next to it, use the path); ``data``
    when it came as bytes; ``proto`` caches a parsed ``onnx.ModelProto``.
    """

    format: str
    path: Path | None = None
    data: bytes | None = None
    proto: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ModelFormatError("the model has neither a path nor bytes")
        return self.path.read_bytes()

    @property
    def display_name(self) -> str:
        return str(self.path) if self.path is not None else f"<{self.format} model in memory>"


_BUNDLE_MAGIC = b"EDGEAI-BUNDLE"


def sniff_format(head: bytes, name: str = "") -> str:
    """Guess a model's format from its first bytes and, failing that, its file name.

    FlatBuffer formats carry a 4-byte file identifier at offset 4 (``TFL3`` for
    TFLite, ``ET`` + version for ExecuTorch); ONNX and the older Core ML spec
    are plain protobuf and are told apart by extension.

    >>> sniff_format(b"\\x1c\\x00\\x00\\x00TFL3")
    'tflite'
    """
    suffix = Path(name).suffix.lower()
    if head.startswith(_BUNDLE_MAGIC) or suffix == ".eai":
        return "bundle"
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if len(head) >= 8 and head[4:6] == b"ET" and head[6:8].isdigit():
        return "pte"
    if suffix in (".mlmodel", ".mlpackage"):
        return "coreml"
    if suffix in (".tflite", ".lite"):
        return "tflite"
    if suffix == ".pte":
        return "pte"
    if suffix in (".onnx", ".ort", ""):
        return "onnx"
    # ONNX files are often named .pb or .model: try protobuf last.
    return "onnx"


def open_model(model: Any) -> ModelSource:
    """Resolve ``model`` (path, bytes, or ``onnx.ModelProto``) to a :class:`ModelSource`.

    Raises :class:`ModelNotFoundError` for a missing path and
    :class:`ModelFormatError` for an empty file or an unknown object.
    """
    if isinstance(model, ModelSource):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        if not data:
            raise ModelFormatError("the model bytes are empty: pass the contents of a model file")
        return ModelSource(format=sniff_format(data[:16]), data=data)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"model file {str(path)!r} does not exist (working directory: {os.getcwd()})")
        if path.is_dir():
            if path.suffix.lower() == ".mlpackage":
                return ModelSource(format="coreml", path=path)
            raise ModelFormatError(
                f"{str(path)!r} is a directory, not a model file (only Core ML .mlpackage models are directories)"
            )
        if path.stat().st_size == 0:
            raise ModelFormatError(f"model file {str(path)!r} is empty (0 bytes)")
        with path.open("rb") as f:
            head = f.read(16)
        return ModelSource(format=sniff_format(head, path.name), path=path)
    if type(model).__name__ == "ModelProto" and hasattr(model, "graph"):
        return ModelSource(format="onnx", proto=model)
    raise ModelFormatError(
        f"cannot open a model from {type(model).__name__}: pass a file path, the model's bytes or an onnx.ModelProto"
    )
