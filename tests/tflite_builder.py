"""Write small ``.tflite`` models directly with the TFLite schema's object API.

No TensorFlow needed: the FlatBuffers schema module ships with ai-edge-litert
(``ai_edge_litert.schema_py_generated``). ``TFLiteBuilder`` adds tensors,
buffers and operators to one subgraph and serialises the model with the
``TFL3`` file identifier. Models made here are checked against LiteRT's own
interpreter in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def schema() -> Any:
    import ai_edge_litert.schema_py_generated as s

    return s


_TYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int16): "INT16",
    np.dtype(np.bool_): "BOOL",
    "resource": "RESOURCE",
}


class TFLiteBuilder:
    def __init__(self) -> None:
        s = schema()
        self.s = s
        self.model = s.ModelT()
        self.model.version = 3
        self.model.description = "edgeai test model"
        self.model.buffers = [s.BufferT()]  # buffer 0 is the empty buffer by convention
        self.model.operatorCodes = []
        self.sub = s.SubGraphT()
        self.sub.tensors, self.sub.operators, self.sub.inputs, self.sub.outputs = [], [], [], []
        self.sub.name = "main"
        self.model.subgraphs = [self.sub]
        self._codes: dict[tuple[int, str], int] = {}

    def tensor(
        self,
        name: str,
        shape: list[int],
        dtype: Any,
        *,
        data: np.ndarray | None = None,
        scale: float | list[float] | None = None,
        zero_point: int | list[int] | None = None,
        axis: int = 0,
        signature: list[int] | None = None,
        variable: bool = False,
    ) -> int:
        s = self.s
        t = s.TensorT()
        t.name = name
        t.shape = list(shape)
        if signature is not None:
            t.shapeSignature = list(signature)
        t.type = getattr(s.TensorType, _TYPES[dtype if dtype == "resource" else np.dtype(dtype)])
        t.isVariable = variable
        if data is not None:
            buf = s.BufferT()
            buf.data = np.ascontiguousarray(data, dtype=dtype).tobytes()
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        else:
            t.buffer = 0
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = list(np.atleast_1d(np.asarray(scale, np.float32)).astype(float))
            zp = 0 if zero_point is None else zero_point
            q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
            q.quantizedDimension = axis
            t.quantization = q
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1

    def op(
        self,
        opcode: str,
        inputs: list[int],
        outputs: list[int],
        options: Any = None,
        options_type: str | None = None,
        custom: str | None = None,
    ) -> None:
        s = self.s
        builtin = getattr(s.BuiltinOperator, "CUSTOM" if custom else opcode)
        key = (builtin, custom or "")
        if key not in self._codes:
            code = s.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
            code.version = 1
            if custom:
                code.customCode = custom
            self.model.operatorCodes.append(code)
            self._codes[key] = len(self.model.operatorCodes) - 1
        o = s.OperatorT()
        o.opcodeIndex = self._codes[key]
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_type or type(options).__name__[:-1])
            o.builtinOptions = options
        self.sub.operators.append(o)

    def new_subgraph(self, name: str) -> int:
        """Start another subgraph; later tensor()/op()/io() calls go to it. Returns its index."""
        sub = self.s.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = [], [], [], []
        sub.name = name
        self.model.subgraphs.append(sub)
        self.sub = sub
        return len(self.model.subgraphs) - 1

    def use_subgraph(self, index: int) -> None:
        self.sub = self.model.subgraphs[index]

    def io(self, inputs: list[int], outputs: list[int]) -> None:
        self.sub.inputs, self.sub.outputs = list(inputs), list(outputs)

    def build(self) -> bytes:
        import flatbuffers

        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def int8_cnn(seed: int = 0, batch_signature: bool = True) -> bytes:
    """A small int8 CNN: CONV_2D (per-channel int8 weights, fused ReLU) -> AVERAGE_POOL_2D ->
    RESHAPE -> FULLY_CONNECTED -> SOFTMAX, input int8 [N, 8, 8, 1] (NHWC) with a dynamic batch."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder()
    s = b.s
    sig = [-1, 8, 8, 1] if batch_signature else None
    x = b.tensor("image", [1, 8, 8, 1], np.int8, scale=1 / 255, zero_point=-128, signature=sig)
    w = rng.integers(-127, 128, (8, 3, 3, 1)).astype(np.int8)
    w_scale = (rng.random(8) * 0.01 + 0.002).astype(np.float32)
    wt = b.tensor("conv_w", [8, 3, 3, 1], np.int8, data=w, scale=list(w_scale), zero_point=[0] * 8, axis=0)
    bias = rng.integers(-500, 500, 8).astype(np.int32)
    bt = b.tensor("conv_b", [8], np.int32, data=bias, scale=list(w_scale / 255), zero_point=[0] * 8)
    c = b.tensor("conv", [1, 8, 8, 8], np.int8, scale=0.02, zero_point=-128, signature=[-1, 8, 8, 8] if sig else None)
    opts = s.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = s.Padding.SAME, 1, 1
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.fusedActivationFunction = s.ActivationFunctionType.RELU
    b.op("CONV_2D", [x, wt, bt], [c], opts)
    p = b.tensor("pool", [1, 4, 4, 8], np.int8, scale=0.02, zero_point=-128, signature=[-1, 4, 4, 8] if sig else None)
    po = s.Pool2DOptionsT()
    po.padding, po.strideH, po.strideW, po.filterHeight, po.filterWidth = s.Padding.VALID, 2, 2, 2, 2
    b.op("AVERAGE_POOL_2D", [c], [p], po)
    shape = b.tensor("shape", [2], np.int32, data=np.array([-1, 128], np.int32))
    r = b.tensor("flat", [1, 128], np.int8, scale=0.02, zero_point=-128, signature=[-1, 128] if sig else None)
    b.op("RESHAPE", [p, shape], [r], s.ReshapeOptionsT())
    fw = rng.integers(-127, 128, (10, 128)).astype(np.int8)
    fwt = b.tensor("fc_w", [10, 128], np.int8, data=fw, scale=0.004, zero_point=0)
    fb = b.tensor("fc_b", [10], np.int32, data=rng.integers(-200, 200, 10).astype(np.int32), scale=0.02 * 0.004)
    logits = b.tensor("logits", [1, 10], np.int8, scale=0.1, zero_point=0, signature=[-1, 10] if sig else None)
    b.op("FULLY_CONNECTED", [r, fwt, fb], [logits], s.FullyConnectedOptionsT())
    probs = b.tensor("probs", [1, 10], np.int8, scale=1 / 256, zero_point=-128, signature=[-1, 10] if sig else None)
    so = s.SoftmaxOptionsT()
    so.beta = 1.0
    b.op("SOFTMAX", [logits], [probs], so)
    b.io([x], [probs])
    return b.build()


def float_add_mul() -> bytes:
    """y = (a + b) * a in float32, shapes [2, 3]."""
    b = TFLiteBuilder()
    s = b.s
    a = b.tensor("a", [2, 3], np.float32)
    c = b.tensor("b", [2, 3], np.float32)
    t = b.tensor("sum", [2, 3], np.float32)
    y = b.tensor("y", [2, 3], np.float32)
    b.op("ADD", [a, c], [t], s.AddOptionsT())
    b.op("MUL", [t, a], [y], s.MulOptionsT())
    b.io([a, c], [y])
    return b.build()


def custom_op_model(name: str = "EdgeAIUnknownOp") -> bytes:
    """A float model whose only op is a custom op LiteRT does not know."""
    b = TFLiteBuilder()
    x = b.tensor("x", [4], np.float32)
    y = b.tensor("y", [4], np.float32)
    b.op("CUSTOM", [x], [y], custom=name)
    b.io([x], [y])
    return b.build()


def stateful_accumulator() -> bytes:
    """A streaming-style model with state in a resource variable: ``state += x; y = state``.

    Subgraph 0 runs CALL_ONCE(init) then VAR_HANDLE, READ_VARIABLE, ADD,
    ASSIGN_VARIABLE; subgraph 1 (the init) assigns zeros to the variable.
    """
    b = TFLiteBuilder()
    s = b.s
    x = b.tensor("x", [1, 4], np.float32)
    handle = b.tensor("state_handle", [], "resource")
    current = b.tensor("state", [1, 4], np.float32)
    y = b.tensor("y", [1, 4], np.float32)
    init_index = 1
    call_once = s.CallOnceOptionsT()
    call_once.initSubgraphIndex = init_index
    b.op("CALL_ONCE", [], [], call_once)
    vh = s.VarHandleOptionsT()
    vh.container, vh.sharedName = "", "accumulator"
    b.op("VAR_HANDLE", [], [handle], vh)
    b.op("READ_VARIABLE", [handle], [current])
    b.op("ADD", [current, x], [y], s.AddOptionsT())
    b.op("ASSIGN_VARIABLE", [handle, y], [])
    b.io([x], [y])
    b.new_subgraph("init")
    h2 = b.tensor("init_handle", [], "resource")
    zeros = b.tensor("zeros", [1, 4], np.float32, data=np.zeros((1, 4), np.float32))
    vh2 = s.VarHandleOptionsT()
    vh2.container, vh2.sharedName = "", "accumulator"
    b.op("VAR_HANDLE", [], [h2], vh2)
    b.op("ASSIGN_VARIABLE", [h2, zeros], [])
    b.io([], [])
    return b.build()


def single_op(
    opcode: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    options: Any = None,
    custom: str | None = None,
    custom_options: bytes | None = None,
) -> bytes:
    """A model of one operator. Each input/output is a dict of :meth:`TFLiteBuilder.tensor`'s
    arguments (``name``, ``shape``, ``dtype``, optional ``data``, ``scale``, ``zero_point``,
    ``axis``); inputs with ``data`` are constants, the others become model inputs.
    ``None`` in ``inputs`` is an omitted optional input (index -1)."""
    b = TFLiteBuilder()
    ins, feeds = [], []
    for spec in inputs:
        if spec is None:
            ins.append(-1)
            continue
        idx = b.tensor(**spec)
        ins.append(idx)
        if spec.get("data") is None:
            feeds.append(idx)
    outs = [b.tensor(**spec) for spec in outputs]
    b.op(opcode, ins, outs, options, custom=custom)
    if custom_options is not None:
        b.sub.operators[-1].customOptions = list(custom_options)
    b.io(feeds, outs)
    return b.build()


def pool_params(padding: str, stride: int, filt: int, activation: int = 0) -> bytes:
    """MediaPipe's custom options for its pooling ops: a ``TfLitePoolParams`` C struct
    (padding 1 = SAME, 2 = VALID; strides, filter sizes, activation; computed padding zeros)."""
    pad = {"SAME": 1, "VALID": 2}[padding]
    return np.array([pad, stride, stride, filt, filt, activation, 0, 0, 0, 0], "<i4").tobytes()


def int8_model_with_custom_op(custom: str = "MaxPoolingWithArgmax2D", pool_builtin: bool = False) -> bytes:
    """float x [N, 8, 8, 3] -> QUANTIZE -> CONV_2D (int8, ReLU) -> DEQUANTIZE -> ``custom``
    (MediaPipe's 2x2/2 max pool with argmax; ``pool_builtin=True`` puts LiteRT's own MAX_POOL_2D
    there instead, with the argmax output dropped) -> QUANTIZE -> RESHAPE -> FULLY_CONNECTED
    (int8) -> DEQUANTIZE -> y [N, 5]; outputs ``y`` and the pooling ``argmax``."""
    rng = np.random.default_rng(7)
    b = TFLiteBuilder()
    s = b.s
    f32 = np.float32
    x = b.tensor("x", [1, 8, 8, 3], f32, signature=[-1, 8, 8, 3])
    xq = b.tensor("x_q", [1, 8, 8, 3], np.int8, scale=1 / 64, zero_point=0, signature=[-1, 8, 8, 3])
    b.op("QUANTIZE", [x], [xq])
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    ws = [0.01, 0.012, 0.008, 0.011]
    wt = b.tensor("conv_w", [4, 3, 3, 3], np.int8, data=w, scale=ws, zero_point=[0] * 4, axis=0)
    bias = rng.integers(-200, 200, 4).astype(np.int32)
    bs = [float(np.float32(1 / 64) * np.float32(v)) for v in ws]
    bt = b.tensor("conv_b", [4], np.int32, data=bias, scale=bs, zero_point=[0] * 4)
    c = b.tensor("conv", [1, 8, 8, 4], np.int8, scale=0.05, zero_point=-128, signature=[-1, 8, 8, 4])
    opts = s.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = s.Padding.SAME, 1, 1
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.fusedActivationFunction = s.ActivationFunctionType.RELU
    b.op("CONV_2D", [xq, wt, bt], [c], opts)
    cf = b.tensor("conv_f", [1, 8, 8, 4], f32, signature=[-1, 8, 8, 4])
    b.op("DEQUANTIZE", [c], [cf])
    pooled = b.tensor("pooled", [1, 4, 4, 4], f32, signature=[-1, 4, 4, 4])
    outputs = []
    if pool_builtin:
        po = s.Pool2DOptionsT()
        po.padding, po.strideH, po.strideW, po.filterHeight, po.filterWidth = s.Padding.VALID, 2, 2, 2, 2
        b.op("MAX_POOL_2D", [cf], [pooled], po)
    else:
        argmax = b.tensor("argmax", [1, 4, 4, 4], f32, signature=[-1, 4, 4, 4])
        b.op("CUSTOM", [cf], [pooled, argmax], custom=custom)
        b.sub.operators[-1].customOptions = list(pool_params("VALID", 2, 2))
        outputs.append(argmax)
    pq = b.tensor("pooled_q", [1, 4, 4, 4], np.int8, scale=0.05, zero_point=-128, signature=[-1, 4, 4, 4])
    b.op("QUANTIZE", [pooled], [pq])
    shape = b.tensor("flat_shape", [2], np.int32, data=np.array([-1, 64], np.int32))
    flat = b.tensor("flat", [1, 64], np.int8, scale=0.05, zero_point=-128, signature=[-1, 64])
    b.op("RESHAPE", [pq, shape], [flat], s.ReshapeOptionsT())
    fw = rng.integers(-127, 128, (5, 64)).astype(np.int8)
    fwt = b.tensor("fc_w", [5, 64], np.int8, data=fw, scale=0.002, zero_point=0)
    fb = b.tensor("fc_b", [5], np.int32, data=rng.integers(-500, 500, 5).astype(np.int32),
                  scale=float(np.float32(0.05) * np.float32(0.002)))  # fmt: skip
    logits = b.tensor("logits", [1, 5], np.int8, scale=0.1, zero_point=0, signature=[-1, 5])
    b.op("FULLY_CONNECTED", [flat, fwt, fb], [logits], s.FullyConnectedOptionsT())
    y = b.tensor("y", [1, 5], f32, signature=[-1, 5])
    b.op("DEQUANTIZE", [logits], [y])
    b.io([x], [y, *outputs])
    return b.build()


def landmarks_model_with_custom_op(custom: str = "TransformLandmarks") -> bytes:
    """An int8 landmark head with MediaPipe's TransformLandmarks (version 2) in the middle:
    float x [1, 16] -> QUANTIZE -> FULLY_CONNECTED (int8) -> DEQUANTIZE -> RESHAPE [1, 5, 3] ->
    ``custom``(landmarks, matrix [1, 4, 4]) -> RESHAPE [1, 15] -> QUANTIZE -> FULLY_CONNECTED
    (int8) -> DEQUANTIZE -> y [1, 4]. Inputs ``x`` and ``matrix``; outputs ``y`` and ``landmarks``."""
    rng = np.random.default_rng(11)
    b = TFLiteBuilder()
    s = b.s
    f32 = np.float32
    x = b.tensor("x", [1, 16], f32)
    matrix = b.tensor("matrix", [1, 4, 4], f32)
    xq = b.tensor("x_q", [1, 16], np.int8, scale=1 / 64, zero_point=0)
    b.op("QUANTIZE", [x], [xq])
    w1 = b.tensor("fc1_w", [15, 16], np.int8, data=rng.integers(-127, 128, (15, 16)).astype(np.int8), scale=0.01)
    b1 = b.tensor("fc1_b", [15], np.int32, data=rng.integers(-300, 300, 15).astype(np.int32),
                  scale=float(np.float32(1 / 64) * np.float32(0.01)))  # fmt: skip
    h = b.tensor("h_q", [1, 15], np.int8, scale=0.02, zero_point=3)
    b.op("FULLY_CONNECTED", [xq, w1, b1], [h], s.FullyConnectedOptionsT())
    hf = b.tensor("h", [1, 15], f32)
    b.op("DEQUANTIZE", [h], [hf])
    s1 = b.tensor("shape_in", [3], np.int32, data=np.array([1, 5, 3], np.int32))
    lm = b.tensor("raw_landmarks", [1, 5, 3], f32)
    b.op("RESHAPE", [hf, s1], [lm], s.ReshapeOptionsT())
    out_lm = b.tensor("landmarks", [1, 5, 3], f32)
    b.op("CUSTOM", [lm, matrix], [out_lm], custom=custom)
    b.model.operatorCodes[b._codes[(s.BuiltinOperator.CUSTOM, custom)]].version = 2
    s2 = b.tensor("shape_out", [2], np.int32, data=np.array([1, 15], np.int32))
    flat = b.tensor("flat", [1, 15], f32)
    b.op("RESHAPE", [out_lm, s2], [flat], s.ReshapeOptionsT())
    fq = b.tensor("flat_q", [1, 15], np.int8, scale=0.05, zero_point=-2)
    b.op("QUANTIZE", [flat], [fq])
    w2 = b.tensor("fc2_w", [4, 15], np.int8, data=rng.integers(-127, 128, (4, 15)).astype(np.int8), scale=0.004)
    b2 = b.tensor("fc2_b", [4], np.int32, data=rng.integers(-300, 300, 4).astype(np.int32),
                  scale=float(np.float32(0.05) * np.float32(0.004)))  # fmt: skip
    yq = b.tensor("y_q", [1, 4], np.int8, scale=0.05, zero_point=0)
    b.op("FULLY_CONNECTED", [fq, w2, b2], [yq], s.FullyConnectedOptionsT())
    y = b.tensor("y", [1, 4], f32)
    b.op("DEQUANTIZE", [yq], [y])
    b.io([x, matrix], [y, out_lm])
    return b.build()


def int8_mobile_cnn(seed: int = 0, size: int = 32) -> bytes:
    """A MobileNet-like int8 CNN for benchmarks: [1, size, size, 3] -> CONV 3x3/2 (16, ReLU6) ->
    DEPTHWISE 3x3 (ReLU6) -> CONV 1x1 (32, ReLU6) -> DEPTHWISE 3x3/2 (ReLU6) -> CONV 1x1 (64) ->
    ADD (residual-free skip: the 1x1 output added to itself) -> AVERAGE_POOL (global) -> RESHAPE ->
    FULLY_CONNECTED (10). Per-channel weights throughout."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder()
    s = b.s
    x = b.tensor("image", [1, size, size, 3], np.int8, scale=1 / 128, zero_point=0)
    state = {"t": x, "c": 3, "hw": size, "scale": 1 / 128, "zp": 0}

    def conv(name: str, out_c: int, k: int, stride: int, depthwise: bool, act: str) -> None:
        c = state["c"]
        oc = c if depthwise else out_c
        shape = [1, k, k, c] if depthwise else [oc, k, k, c]
        w = rng.integers(-127, 128, shape).astype(np.int8)
        ws = (rng.uniform(0.5, 1.0, oc) * (4.0 / np.sqrt(k * k * (1 if depthwise else c))) / 127).astype(np.float32)
        wt = b.tensor(f"{name}_w", shape, np.int8, data=w, scale=list(ws), zero_point=[0] * oc,
                      axis=3 if depthwise else 0)  # fmt: skip
        bs = (np.float32(state["scale"]) * ws).astype(np.float32)
        bt = b.tensor(f"{name}_b", [oc], np.int32, data=rng.integers(-200, 200, oc).astype(np.int32),
                      scale=list(bs), zero_point=[0] * oc)  # fmt: skip
        hw = -(-state["hw"] // stride)
        out = b.tensor(name, [1, hw, hw, oc], np.int8, scale=0.03, zero_point=-128 if act != "NONE" else 0)
        opts = s.DepthwiseConv2DOptionsT() if depthwise else s.Conv2DOptionsT()
        opts.padding, opts.strideH, opts.strideW = s.Padding.SAME, stride, stride
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = getattr(s.ActivationFunctionType, act)
        if depthwise:
            opts.depthMultiplier = 1
        b.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [state["t"], wt, bt], [out], opts)
        state.update(t=out, c=oc, hw=hw, scale=0.03, zp=-128 if act != "NONE" else 0)

    conv("conv1", 16, 3, 2, False, "RELU6")
    conv("dw1", 16, 3, 1, True, "RELU6")
    conv("pw1", 32, 1, 1, False, "RELU6")
    conv("dw2", 32, 3, 2, True, "RELU6")
    conv("pw2", 64, 1, 1, False, "NONE")
    hw = state["hw"]
    added = b.tensor("added", [1, hw, hw, 64], np.int8, scale=0.1, zero_point=0)
    b.op("ADD", [state["t"], state["t"]], [added], s.AddOptionsT())
    pool = b.tensor("pool", [1, 1, 1, 64], np.int8, scale=0.1, zero_point=0)
    po = s.Pool2DOptionsT()
    po.padding, po.strideH, po.strideW, po.filterHeight, po.filterWidth = s.Padding.VALID, 1, 1, hw, hw
    b.op("AVERAGE_POOL_2D", [added], [pool], po)
    shape = b.tensor("shape", [2], np.int32, data=np.array([1, 64], np.int32))
    flat = b.tensor("flat", [1, 64], np.int8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [pool, shape], [flat], s.ReshapeOptionsT())
    fw = rng.integers(-127, 128, (10, 64)).astype(np.int8)
    fwt = b.tensor("fc_w", [10, 64], np.int8, data=fw, scale=0.003, zero_point=0)
    fb = b.tensor("fc_b", [10], np.int32, data=rng.integers(-500, 500, 10).astype(np.int32),
                  scale=float(np.float32(0.1) * np.float32(0.003)))  # fmt: skip
    logits = b.tensor("logits", [1, 10], np.int8, scale=0.1, zero_point=0)
    b.op("FULLY_CONNECTED", [flat, fwt, fb], [logits], s.FullyConnectedOptionsT())
    b.io([x], [logits])
    return b.build()
