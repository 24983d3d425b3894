"""Native TFLite builtin ops in TFLite's integer arithmetic, and MediaPipe custom ops.

Nodes imported from ``.tflite`` models (:mod:`edgeai.formats.tflite_format`)
have domain ``"tflite"`` and the builtin's name as op type; these modules
implement the int8 builtins with the arithmetic of LiteRT's reference
kernels (fixed-point multiplier and shift, gemmlowp rounding), so their
outputs are bit-exact with ``OpResolverType.BUILTIN_REF``. Custom ops
(domain ``"tflite.custom"``) follow MediaPipe's published semantics.
"""
