"""Export helpers: QOperator int8 quantization that tract runs on its int8
kernels, the int8 graph input, hashes and golden outputs.

FINDINGS.md section 2: onnxruntime's QOperator export must be limited to standard
ops (op_types_to_quantize) or tract rejects the com.microsoft ones; S8S8 keeps
tract and onnxruntime bit-identical.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

class _Reader(CalibrationDataReader):
    def __init__(self, batches):
        self._it = iter([{"image": b} for b in batches])

    def get_next(self):
        return next(self._it, None)


QUANTIZED_OPS = ["Conv", "MatMul", "Relu", "Reshape", "Transpose"]


def quantize_int8_input(f32_path: Path, q_path: Path, calib: np.ndarray, op_types=QUANTIZED_OPS,
                        quant_format=QuantFormat.QOperator):
    """QOperator (or, for tests/qdq/, QDQ) S8S8 per-tensor; then the input
    QuantizeLinear is removed so the graph takes int8 directly (the runtime
    quantizes through a 256-entry table).
    Returns (scale, zero_point) of the int8 input."""
    # Black and white frames pin the input range to [0, 1]: scale 1/255, zero point -128.
    side = calib.shape[-1]
    calib = np.concatenate([calib.reshape(-1, side, side), np.zeros((1, side, side)), np.ones((1, side, side))])
    quantize_static(
        str(f32_path),
        str(q_path),
        _Reader([c[None, None].astype(np.float32) for c in calib]),
        quant_format=quant_format,
        op_types_to_quantize=op_types,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=False,
    )
    m = onnx.load(str(q_path))
    g = m.graph
    # The input QuantizeLinear sits on the graph input, or after a shape-only op
    # (Reshape/Flatten) that onnxruntime leaves in float. Shape ops work on any
    # dtype, so the graph input itself becomes int8 and the QuantizeLinear goes.
    shape_only = {n.output[0]: n for n in g.node if n.op_type in ("Reshape", "Flatten") and n.input[0] == "image"}
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and (n.input[0] == "image" or n.input[0] in shape_only))
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    scale, zp = float(init[q.input[1]]), int(init[q.input[2]])
    g.node.remove(q)
    for n in g.node:
        for k, name in enumerate(n.input):
            if name == q.output[0]:
                n.input[k] = q.input[0]
    shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    del g.value_info[:]  # stale float types of the rewired tensors
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.INT8, shape))
    ops = sorted({n.op_type for n in g.node})
    bad = [n for n in g.node if n.domain not in ("", "ai.onnx")]
    assert not bad, f"non-standard ops: {[(n.domain, n.op_type) for n in bad]}"
    onnx.checker.check_model(m)
    onnx.save(m, str(q_path))
    return scale, zp, ops


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantize_pixels(u8: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """The runtime's table: pixel p -> clamp(round((p / 255) / scale) + zp)."""
    table = np.clip(np.round((np.arange(256) / 255.0) / scale) + zp, -128, 127).astype(np.int8)
    return table[u8]


def write_golden(q_path: Path, inputs_i8, names, out: Path, sources=None) -> None:
    """onnxruntime's outputs on fixed int8 inputs, for the Rust tract tests.
    A case's `source` (a file in the repository and a frame) lets the Rust
    tests also run the runtime's own chain on it and compare the input."""
    sess = ort.InferenceSession(str(q_path), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    cases = []
    for k, (name, x) in enumerate(zip(names, inputs_i8)):
        y = sess.run(None, {in_name: x.reshape(sess.get_inputs()[0].shape).astype(np.int8)})[0]
        case = {"name": name, "input": x.ravel().tolist(), "output": y.ravel().tolist()}
        if sources and sources[k]:
            case["source"] = sources[k]
        cases.append(case)
    out.write_text(json.dumps({"runtime": f"onnxruntime {ort.__version__}", "cases": cases}) + "\n")
