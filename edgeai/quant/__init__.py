"""Quantization arithmetic: requantization modes and quantization parameters.

Modules: :mod:`edgeai.quant.requant` (ONNX and TFLite requantization, numba
jitable helpers), :mod:`edgeai.quant.params` (ranges, per-axis and blocked
parameter broadcasting).
"""
