"""The fixtures of tests/integration/import.rs: a small network with every
kind of layer users bring (a stride-2 convolution, a depthwise convolution,
a residual add, max pooling, global average pooling, a dense head), in
float and quantized by onnxruntime's quantize_static with its defaults for
every operator it can quantize, in each format a user may hand bedside:

    {qop,qdq} x {s8,u8} activations x {pt,pc} weights (per-tensor, per-channel)

and onnxruntime's outputs on a few inputs, so the Rust tests (on every
tier, aarch64 included) check bedside's import against onnxruntime without
Python. The QOperator exports hold com.microsoft's QLinearAdd,
QLinearGlobalAveragePool and QGemm; all keep the float input and its
QuantizeLinear, as quantize_static writes them.

    python tests/import/make.py      (the training venv: scripts/setup --venv)
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models" / "bench"))
sys.path.insert(0, str(ROOT / "models" / "train"))
import export  # noqa: E402
import make_nets  # noqa: E402

OUT = Path(__file__).resolve().parent
SIDE = 32
CLASSES = 4


def tiny(seed=5, channels=1):
    n = make_nets.Net("import-tiny", seed)
    x, side = n.conv("image", channels, 8, 3, 2, SIDE)  # 16x16
    y, _ = n.conv(x, 8, 8, 3, 1, side, group=8)  # depthwise
    y, _ = n.conv(y, 8, 8, 1, 1, side, relu=False)  # pointwise
    x = n.add(x, y)  # residual
    pool = n.fresh("pool")
    n.nodes.append(helper.make_node("MaxPool", [x], [pool], kernel_shape=[2, 2], strides=[2, 2]))
    x, side = n.conv(pool, 8, 16, 3, 1, side // 2)
    gap, flat = n.fresh("gap"), n.fresh("flat")
    n.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    n.nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
    w = n.rng.normal(0, np.sqrt(1.0 / 16), (16, CLASSES))
    n.nodes.append(helper.make_node(
        "Gemm", [flat, n.const("fc_w", w), n.const("fc_b", n.rng.normal(0, 0.1, CLASSES))], ["logits"]))
    g = helper.make_graph(
        n.nodes, n.name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        n.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def input_quant(path: Path):
    """The scale and zero point of the graph's input QuantizeLinear."""
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
    zp = inits[q.input[2]]
    return float(inits[q.input[1]]), int(zp), zp.dtype


def main():
    f32 = OUT / "tiny.f32.onnx"
    onnx.save(tiny(), str(f32))
    rng = np.random.default_rng(11)
    calib = [rng.random((1, 1, SIDE, SIDE)).astype(np.float32) for _ in range(16)]
    calib += [np.zeros((1, 1, SIDE, SIDE), np.float32), np.ones((1, 1, SIDE, SIDE), np.float32)]
    # Inputs as bedside would feed them: pixels 0..255.
    pixels = [rng.integers(0, 256, (SIDE, SIDE)) for _ in range(3)]
    fsess = ort.InferenceSession(str(f32), providers=["CPUExecutionProvider"])
    variants = {}
    for fmt, f in [(QuantFormat.QOperator, "qop"), (QuantFormat.QDQ, "qdq")]:
        for act, a in [(QuantType.QInt8, "s8"), (QuantType.QUInt8, "u8")]:
            for per_channel, p in [(False, "pt"), (True, "pc")]:
                name = f"tiny.{f}-{a}-{p}.onnx"
                quantize_static(
                    str(f32), str(OUT / name), export._Reader(list(calib)),
                    quant_format=fmt, activation_type=act, weight_type=QuantType.QInt8,
                    per_channel=per_channel)
                scale, zp, dtype = input_quant(OUT / name)
                sess = ort.InferenceSession(str(OUT / name), providers=["CPUExecutionProvider"])
                cases = []
                for px in pixels:
                    # bedside's table: q = clamp(round(p / 255 / scale) + zp), as int8
                    # (a uint8 zero point is shifted by -128 on import).
                    zp8 = zp - 128 if dtype == np.uint8 else zp
                    q = np.clip(np.round(px / 255.0 / scale) + zp8, -128, 127).astype(np.int8)
                    # The float input whose QuantizeLinear gives exactly q.
                    x = ((q.astype(np.float32) - zp8) * np.float32(scale)).reshape(1, 1, SIDE, SIDE)
                    y = sess.run(None, {"image": x})[0]
                    yf = fsess.run(None, {"image": x})[0]
                    cases.append({"input": q.ravel().tolist(), "output": y.ravel().tolist(),
                                  "f32_output": yf.ravel().tolist()})
                ops = sorted({(n.domain or "") + ":" + n.op_type for n in onnx.load(str(OUT / name)).graph.node})
                variants[name] = {"input_scale": scale, "input_zero_point": int(zp8), "ops": ops,
                                  "cases": cases}
                print(f"{name}: input scale {scale} zero point {zp} ({dtype}), ops {ops}")
    # A colour network (3 input channels) for --gray-from-rgb: onnxruntime's
    # outputs on the gray picture given in all three channels.
    rgb32 = OUT / "tiny_rgb.f32.onnx"
    onnx.save(tiny(channels=3), str(rgb32))
    rsess = ort.InferenceSession(str(rgb32), providers=["CPUExecutionProvider"])
    rgb = {}
    for fmt, f, act, a, per_channel, p in [(QuantFormat.QOperator, "qop", QuantType.QInt8, "s8", True, "pc"),
                                          (QuantFormat.QDQ, "qdq", QuantType.QInt8, "s8", False, "pt")]:
        name = f"tiny_rgb.{f}-{a}-{p}.onnx"
        quantize_static(
            str(rgb32), str(OUT / name), export._Reader([np.repeat(c, 3, axis=1) for c in calib]),
            quant_format=fmt, activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel)
        scale, zp, _ = input_quant(OUT / name)
        sess = ort.InferenceSession(str(OUT / name), providers=["CPUExecutionProvider"])
        cases = []
        for px in pixels:
            q = np.clip(np.round(px / 255.0 / scale) + zp, -128, 127).astype(np.int8)
            x = ((q.astype(np.float32) - zp) * np.float32(scale)).reshape(1, 1, SIDE, SIDE)
            x3 = np.repeat(x, 3, axis=1)
            cases.append({"input": q.ravel().tolist(), "output": sess.run(None, {"image": x3})[0].ravel().tolist(),
                          "f32_output": rsess.run(None, {"image": x3})[0].ravel().tolist()})
        rgb[name] = {"input_scale": scale, "input_zero_point": zp, "cases": cases}
        print(f"{name}: input scale {scale} zero point {zp}")
    (OUT / "references.json").write_text(json.dumps(
        {"runtime": f"onnxruntime {ort.__version__}", "float": f32.name, "variants": variants,
         "rgb_float": rgb32.name, "rgb_variants": rgb}, indent=None) + "\n")


if __name__ == "__main__":
    main()
