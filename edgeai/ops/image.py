"""ImageDecoder-20: decode an encoded image (a 1-D uint8 tensor) to ``[H, W, C]`` uint8.

Decoding runs on Pillow (the optional ``image`` extra), imported when the
first ImageDecoder node is built, so ``import edgeai`` and every other op stay
free of it; without Pillow installed the op is not claimed (the module is
skipped by :func:`edgeai.ops.load_all`). Formats: BMP, JPEG (libjpeg-turbo's "fancy" chroma upsampling, the
method the ONNX specification names), JPEG 2000, TIFF, PNG, WebP and the
portable any-map family (PBM, PGM, PPM). ``pixel_format`` is ``RGB``
(default, ``[H, W, 3]``), ``BGR`` (``[H, W, 3]``) or ``Grayscale``
(``[H, W, 1]``, ITU-R 601-2 luma ``L = 0.299 R + 0.587 G + 0.114 B``, rounded,
as Pillow converts). Palette and alpha images are converted to 8-bit RGB
first (alpha is dropped); 16-bit gray keeps its high byte. As the specification asks, bytes that cannot be
decoded give an empty ``[0, 0, C]`` tensor rather than an error.

Example:
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from edgeai.ops._base import OpContext, lookup
    >>> buf = io.BytesIO()
    >>> Image.fromarray(np.full((2, 3, 3), 7, np.uint8)).save(buf, format="PNG")
    >>> op = lookup("ImageDecoder", "", 20)(OpContext(node_name="dec", op_type="ImageDecoder", opset=20))
    >>> op.run(np.frombuffer(buf.getvalue(), np.uint8))[0].shape
    (2, 3, 3)
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import numpy as np

from edgeai.errors import InferenceError, MissingDependencyError
from edgeai.ops._base import Op, OpContext, register

if importlib.util.find_spec("PIL") is None:
    # edgeai.ops.load_all() skips this module: without Pillow ImageDecoder is not claimed
    raise ModuleNotFoundError("ImageDecoder needs Pillow: pip install 'edgeai[image]'", name="PIL")

__all__ = ["decode_image"]

_FORMATS = ("RGB", "BGR", "Grayscale")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            "ImageDecoder needs Pillow; install it with `pip install 'edgeai[image]'` (or `pip install pillow`)"
        ) from exc
    return Image


def decode_image(data: bytes, pixel_format: str = "RGB") -> np.ndarray:
    """Decode ``data`` to ``[H, W, 3]`` (RGB/BGR) or ``[H, W, 1]`` (Grayscale) uint8; empty if undecodable.

    >>> decode_image(b"not an image").shape
    (0, 0, 3)
    """
    if pixel_format not in _FORMATS:
        raise ValueError(f"pixel_format must be one of {_FORMATS}, got {pixel_format!r}")
    channels = 1 if pixel_format == "Grayscale" else 3
    image_mod = _pillow()
    try:
        with image_mod.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":
                # 16-bit gray: keep the high byte (Pillow's own conversion clips at 255)
                deep = np.asarray(img).astype(np.int64)
                gray = (np.clip(deep, 0, 65535) >> 8).astype(np.uint8)
                img = image_mod.fromarray(gray)
            if img.mode not in ("RGB", "L"):
                img = img.convert("RGB")  # palette, alpha, CMYK, 16-bit, 1-bit: 8-bit RGB first
            img = img.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError):
        return np.zeros((0, 0, channels), np.uint8)
    if channels == 1:
        return pixels[:, :, None].copy()
    if pixel_format == "BGR":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    return pixels.copy()


@register("ImageDecoder", since=20)
class ImageDecoder(Op):
    """ImageDecoder-20: encoded bytes in, ``[H, W, C]`` uint8 pixels out."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        fmt = ctx.attr("pixel_format", "RGB")
        self._format = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if self._format not in _FORMATS:
            raise InferenceError(
                f"ImageDecoder node {ctx.node_name!r}: pixel_format={self._format!r} is not one of {_FORMATS}"
            )
        _pillow()

    def run(self, encoded: Any) -> tuple[np.ndarray]:
        arr = np.asarray(encoded)
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise InferenceError(
                f"ImageDecoder node {self.ctx.node_name!r}: encoded_stream must be a 1-D uint8 tensor, "
                f"got {arr.dtype} of shape {arr.shape}"
            )
        return (decode_image(arr.tobytes(), self._format),)
