"""INT8 ops of the native engine, bit-exact with ONNX Runtime in ONNX requantization mode.

Importing this package registers every op module with :mod:`edgeai.ops._base`.
:mod:`edgeai.ops.quantized.reference` holds the integer cores (the oracle of
the fast kernels in :mod:`edgeai.kernels`).
"""

from edgeai.ops.quantized import (  # noqa: F401  (imported to register the ops)
    qlinear_concat,
    qlinear_conv,
    qlinear_elementwise,
    qlinear_matmul,
    qlinear_pool,
    qlinear_softmax,
    quantize_linear,
)
