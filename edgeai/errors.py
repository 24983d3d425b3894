"""The exceptions edgeai raises. Every one says what was wrong and what to do.

The tree::

    EdgeAIError
    ├── ModelError
    │   ├── ModelNotFoundError        (also FileNotFoundError)
    │   ├── ModelFormatError          (also ValueError) empty, truncated, corrupt, unknown format
    │   ├── ExternalDataError         external tensor data missing or outside the model's folder
    │   └── ExportError               exporting a torch model failed
    │       ├── ConversionError       the converter (torch.onnx, ExecuTorch, coremltools) failed
    │       └── ExportCheckError      (also InferenceError) the export disagrees with torch
    ├── UnsupportedOpError            an op (type, domain, opset) no engine can run
    ├── DeviceError
    │   ├── DeviceNotAvailableError   the requested device or target is not present
    │   └── PlacementError            a pin or placement contract that cannot be met
    ├── InputError                    (also ValueError) a feed does not match the model
    │   ├── InputNameError            unknown or missing input name
    │   ├── InputTypeError            wrong dtype, or not an array
    │   ├── InputShapeError           wrong rank or dimension
    │   └── InputValidationError      a validation-policy rule was violated
    ├── InferenceError                the runtime failed while running
    ├── SessionClosedError            run() after close()
    ├── MissingDependencyError        (also ImportError) an optional extra is not installed
    ├── KernelError                   (also ValueError) an INT8 kernel cannot take these arguments or path
    ├── OptimizationError             (also ValueError) a model or option cannot be optimized as asked
    │   ├── CalibrationError          empty calibration data, or feeds that do not match the model
    │   └── AlreadyQuantizedError     the model is quantized already
    ├── StoreError                    the on-device model store cannot do what was asked
    ├── DownloadError                 a model download failed (network, HTTP status, resume)
    └── SecurityError
        ├── SignatureError            unknown key or bad signature
        ├── IntegrityError            a hash does not match (tampered bytes)
        ├── DecryptionError           wrong key or corrupted ciphertext
        ├── RollbackError             older than the installed version
        ├── ExpiredError              past its expiry (freeze attack)
        ├── MixAndMatchError          bundle for another model name or target
        └── SizeLimitError            larger than the allowed size

Catch ``EdgeAIError`` to handle everything edgeai raises on purpose.

Example:
    >>> import edgeai
    >>> try:
    ...     edgeai.Session("does-not-exist.onnx")
    ... except edgeai.errors.ModelNotFoundError as e:
    ...     print(type(e).__name__)
    ModelNotFoundError
"""

from __future__ import annotations

__all__ = [
    "AlreadyQuantizedError",
    "CalibrationError",
    "ConversionError",
    "DecryptionError",
    "DeviceError",
    "DeviceNotAvailableError",
    "DownloadError",
    "EdgeAIError",
    "ExpiredError",
    "ExportCheckError",
    "ExportError",
    "ExternalDataError",
    "InferenceError",
    "InputError",
    "InputNameError",
    "InputShapeError",
    "InputTypeError",
    "InputValidationError",
    "IntegrityError",
    "KernelError",
    "MissingDependencyError",
    "MixAndMatchError",
    "ModelError",
    "ModelFormatError",
    "ModelNotFoundError",
    "OptimizationError",
    "PlacementError",
    "RollbackError",
    "SecurityError",
    "SessionClosedError",
    "SignatureError",
    "SizeLimitError",
    "StoreError",
    "UnsupportedOpError",
]


class EdgeAIError(Exception):
    """Base of every exception edgeai raises on purpose."""


class ModelError(EdgeAIError):
    """The model could not be read."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model path does not exist."""


class ModelFormatError(ModelError, ValueError):
    """The model file is empty, truncated, corrupt or of an unknown format."""


class ExternalDataError(ModelError):
    """External tensor data is missing or points outside the model's folder."""


class ExportError(ModelError):
    """Exporting a model to another format failed."""


class ConversionError(ExportError):
    """A converter (torch.onnx, ExecuTorch, coremltools, litert-torch) failed on the model."""


class UnsupportedOpError(EdgeAIError):
    """An operator that no available engine implements.

    Attributes name the op so that callers can act on it programmatically.
    """

    def __init__(
        self,
        message: str,
        *,
        op_type: str | None = None,
        domain: str = "",
        opset: int | None = None,
        node: str | None = None,
    ) -> None:
        super().__init__(message)
        self.op_type = op_type
        self.domain = domain
        self.opset = opset
        self.node = node


class DeviceError(EdgeAIError):
    """A problem choosing or using a device."""


class DeviceNotAvailableError(DeviceError):
    """The requested device (or target profile) is not present."""


class PlacementError(DeviceError):
    """A placement request (pin, forbid, contract) that cannot be satisfied."""


class InputError(EdgeAIError, ValueError):
    """A feed does not match the model's input specs."""


class InputNameError(InputError, KeyError):
    """An unknown input name was fed, or a required input is missing."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InputTypeError(InputError, TypeError):
    """A feed has the wrong dtype or is not array-like."""


class InputShapeError(InputError):
    """A feed has the wrong rank or a dimension that does not match."""


class InputValidationError(InputError):
    """A feed violates the session's input validation policy."""


class InferenceError(EdgeAIError, RuntimeError):
    """The runtime failed while running the model."""


class ExportCheckError(ExportError, InferenceError):
    """The exported model loads but its outputs disagree with the torch model's."""


class SessionClosedError(EdgeAIError, RuntimeError):
    """The session was used after ``close()``."""


class MissingDependencyError(EdgeAIError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""


class KernelError(EdgeAIError, ValueError):
    """An INT8 kernel cannot take the given weights, parameters or code path."""


class OptimizationError(EdgeAIError, ValueError):
    """A model or option cannot be optimized as asked."""


class CalibrationError(OptimizationError):
    """The calibration data is empty or does not match the model."""


class AlreadyQuantizedError(OptimizationError):
    """The model holds quantized operators already; quantize the float model instead."""


class StoreError(EdgeAIError):
    """The on-device model store cannot do what was asked (unknown version, corrupt state)."""


class DownloadError(EdgeAIError):
    """A model download failed: network error, HTTP status, or a resume the server refused."""


class SecurityError(EdgeAIError):
    """A model bundle failed verification."""


class SignatureError(SecurityError):
    """The bundle is unsigned, signed by an unknown key, or the signature is invalid."""


class IntegrityError(SecurityError):
    """A content hash does not match the manifest: the bytes were changed."""


class DecryptionError(SecurityError):
    """The bundle could not be decrypted: wrong key or corrupted ciphertext."""


class RollbackError(SecurityError):
    """The bundle's version is older than the installed one (anti-rollback)."""


class ExpiredError(SecurityError):
    """The bundle's metadata has expired (protects against freeze attacks)."""


class MixAndMatchError(SecurityError):
    """The bundle is for another model name or target."""


class SizeLimitError(SecurityError):
    """The bundle or download is larger than the allowed size."""
