"""INT8 ops of the native engine, bit-exact with ONNX Runtime in ONNX requantization mode.

Importing this package registers every op module with :mod:`edgeai.ops._base`:

* ONNX: QuantizeLinear / DequantizeLinear (per tensor, per axis, blocked; int8,
  uint8, int16, uint16, int4, uint4, int2, uint2, float8, float4),
  DynamicQuantizeLinear, QLinearConv, ConvInteger, QLinearMatMul, MatMulInteger.
* com.microsoft: QLinearConv (``channels_last``), QGemm, QLinearAdd, QLinearMul,
  QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool,
  QLinearAveragePool, QLinearConcat, QLinearSoftmax, DynamicQuantizeMatMul,
  MatMulIntegerToFloat, DynamicQuantizeLSTM.

Every op is "integer accumulation + requantization" where it has an
accumulator; :mod:`edgeai.ops.quantized.reference` holds the integer cores
(the oracle of the fast kernels in :mod:`edgeai.kernels`, which the ops use
when a kernel takes the weights). ``OpContext.requant_mode`` picks ONNX
Runtime's arithmetic (``"onnx"``) or TFLite's (``"tflite"``: fixed-point
multipliers for the accumulator ops, TFLite ADD/MUL, ties away from zero in
QuantizeLinear); ops whose TFLite arithmetic is not written refuse
``"tflite"`` with :class:`~edgeai.errors.UnsupportedOpError`.

Known limits: ONNX Runtime's U8S8 GEMM on AVX2 CPUs *without* VNNI
saturates pairs of products to int16 (``vpmaddubsw``); the engine computes
the exact sums, as ONNX Runtime does on VNNI/AMX CPUs (where these tests
ran).

Example:
    >>> import edgeai.ops.quantized
    >>> from edgeai.ops._base import lookup
    >>> lookup("QLinearConv", "", 10).__name__, lookup("QGemm", "com.microsoft", 1).__name__
    ('QLinearConv', 'QGemm')
"""

from edgeai.ops.quantized import (  # noqa: F401  (imported to register the ops)
    dynamic_quantize_lstm,
    qlinear_concat,
    qlinear_conv,
    qlinear_elementwise,
    qlinear_matmul,
    qlinear_pool,
    qlinear_softmax,
    quantize_linear,
)
