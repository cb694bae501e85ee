"""The int8 benchmark set's two large networks, as bundles: a MobileNetV2 and a
ResNet-18 with gray 224x224 input and random weights (seeded). They are for
speed only, never for answers: their manifests say so, and nothing ships them.

    python models/bench/make_nets.py OUT_DIR      (models/bench/run calls it)

Beside each bundle, ort/ holds onnxruntime's own int8 exports of the same
float graph (U8S8/S8S8 x QOperator/QDQ), for benches/compare/infer.py. The
same four exports are made of the demonstration bundles' float graphs
(OUT_DIR/xray-demo/ort, OUT_DIR/echo-ae-demo/ort), so that onnxruntime is
compared at its best configuration on every network, not only on the
bundles' own S8S8 QOperator graphs.

Each bundle holds the float graph (`model_f32.onnx`) and its QOperator int8
export by onnxruntime's quantize_static (S8S8, per-tensor, symmetric weights,
calibrated on random pictures plus a black and a white one), with the input
QuantizeLinear removed so the graph takes int8 as bedside feeds it (as the
demonstration bundles are made: models/train/export.py). Convolutions and
their ReLUs run int8; the residual adds, the global pooling and the dense head
stay float between DequantizeLinear and QuantizeLinear, which tract runs as
is (issue #26 is about importing the com.microsoft ops onnxruntime would use
for them instead).

MobileNetV2 uses ReLU where the paper has ReLU6 (a common quantization-
friendly variant; the cost is the same) and a 4-class head.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "train"))
import export  # noqa: E402

SIDE = 224
CLASSES = 4


class Net:
    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = 0
        self.macs = 0

    def fresh(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def const(self, name, a):
        self.inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def conv(self, x, cin, cout, k, stride, hw, group=1, relu=True):
        """He-initialized convolution (padding k // 2); returns (y, output side)."""
        out = self.fresh("conv")
        fan_in = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k))
        b = self.rng.normal(0, 0.01, cout)
        p = k // 2
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(out + "_w", w), self.const(out + "_b", b)], [out],
            kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], group=group))
        side = (hw + 2 * p - k) // stride + 1
        self.macs += cout * side * side * fan_in
        if relu:
            y = self.fresh("relu")
            self.nodes.append(helper.make_node("Relu", [out], [y]))
            out = y
        return out, side

    def add(self, a, b):
        y = self.fresh("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y]))
        return y

    def head(self, x, c):
        gap, flat, y = self.fresh("gap"), self.fresh("flat"), "logits"
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
        self.nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
        w = self.rng.normal(0, np.sqrt(1.0 / c), (c, CLASSES))
        self.nodes.append(helper.make_node(
            "Gemm", [flat, self.const("fc_w", w), self.const("fc_b", np.zeros(CLASSES))], [y]))
        self.macs += c * CLASSES

    def model(self):
        g = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, SIDE, SIDE])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def mobilenet_v2(seed=1):
    n = Net("mobilenetv2", seed)
    x, side = n.conv("image", 1, 32, 3, 2, SIDE)
    cin = 32
    for t, c, reps, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(reps):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y, _ = n.conv(y, cin, hidden, 1, 1, side)
            y, out_side = n.conv(y, hidden, hidden, 3, stride, side, group=hidden)
            y, _ = n.conv(y, hidden, c, 1, 1, out_side, relu=False)
            x = n.add(x, y) if stride == 1 and cin == c else y
            cin, side = c, out_side
    x, side = n.conv(x, cin, 1280, 1, 1, side)
    n.head(x, 1280)
    return n


def resnet18(seed=2):
    n = Net("resnet18", seed)
    x, side = n.conv("image", 1, 64, 7, 2, SIDE)
    pool = n.fresh("pool")
    n.nodes.append(helper.make_node("MaxPool", [x], [pool], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, side, cin = pool, (side + 2 - 3) // 2 + 1, 64
    for c, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for i in range(2):
            stride = s if i == 0 else 1
            y, out_side = n.conv(x, cin, c, 3, stride, side)
            y, _ = n.conv(y, c, c, 3, 1, out_side, relu=False)
            shortcut = x
            if stride != 1 or cin != c:
                shortcut, _ = n.conv(x, cin, c, 1, stride, side, relu=False)
            s_out = n.add(shortcut, y)
            r = n.fresh("relu")
            n.nodes.append(helper.make_node("Relu", [s_out], [r]))
            x, cin, side = r, c, out_side
    n.head(x, 512)
    return n


def bundle(net, out: Path):
    d = out / net.name
    d.mkdir(parents=True, exist_ok=True)
    f32 = d / "model_f32.onnx"
    onnx.save(net.model(), str(f32))
    calib = np.random.default_rng(99).random((8, SIDE, SIDE))
    scale, zp, ops = export.quantize_int8_input(
        f32, d / "model.onnx", calib, op_types=["Conv", "Relu", "MaxPool"])
    labels = ", ".join(f'"class {i}"' for i in range(CLASSES))
    ops_list = ", ".join(f'"{o}"' for o in ops)
    (d / "manifest.toml").write_text(f"""# Generated by models/bench/make_nets.py; do not edit by hand.
[model]
name = "{net.name}-bench"
version = "0.1.0"
task = "classify"
demonstration = true
description = "{net.name} with gray {SIDE}x{SIDE} input and RANDOM weights ({net.macs / 1e6:.0f} M MACs): a speed benchmark, never a classifier"

[input]
shape = [1, 1, {SIDE}, {SIDE}]
dtype = "i8"
scale = {scale!r}
zero_point = {zp}
pixel_scale = 0.00392156862745098
preprocess = "resize={SIDE}x{SIDE},quantize"

[output]
shape = [1, {CLASSES}]
kind = "logits"
labels = [{labels}]

[thresholds]
min_confidence = 0.5

[files.int8]
path = "model.onnx"
sha256 = "{export.sha256(d / 'model.onnx')}"

[files.f32]
path = "model_f32.onnx"
sha256 = "{export.sha256(f32)}"

[provenance]
trained_on = "nothing: random weights, seeded (models/bench/make_nets.py)"
evaluation = "none: a speed benchmark"
ops = [{ops_list}]
licence = "MIT OR Apache-2.0"
""")
    print(f"{d}: {net.macs / 1e6:.0f} M MACs, int8 ops {ops}")
    ort_peers(f32, d, calib)


def ort_peers(f32: Path, d: Path, calib):
    """onnxruntime's own int8 exports for benches/compare/infer.py, which
    reports the fastest: U8S8 and S8S8 activations x weights, QOperator and
    QDQ, every operator onnxruntime can quantize (com.microsoft ones
    included), per-tensor, the same calibration as the bundle; the float
    input kept (onnxruntime quantizes it itself)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    peers = d / "ort"
    peers.mkdir(parents=True, exist_ok=True)
    side = calib.shape[-1]
    calib = np.concatenate([calib.reshape(-1, side, side), np.zeros((1, side, side)), np.ones((1, side, side))])
    for act, a in [(QuantType.QUInt8, "u8s8"), (QuantType.QInt8, "s8s8")]:
        for fmt, f in [(QuantFormat.QOperator, "qop"), (QuantFormat.QDQ, "qdq")]:
            quantize_static(
                str(f32),
                str(peers / f"{a}-{f}.onnx"),
                export._Reader([c[None, None].astype(np.float32) for c in calib]),
                quant_format=fmt,
                activation_type=act,
                weight_type=QuantType.QInt8,
                per_channel=False,
            )


def demo_peers(out: Path):
    """onnxruntime's four int8 exports of each demonstration bundle's float
    graph, calibrated on seeded random pictures plus a black and a white one
    (as the benchmark networks)."""
    models = Path(__file__).resolve().parent.parent
    for name in ("xray-demo", "echo-ae-demo"):
        f32 = models / name / "model_f32.onnx"
        side = onnx.load(str(f32)).graph.input[0].type.tensor_type.shape.dim[-1].dim_value
        ort_peers(f32, out / name, np.random.default_rng(99).random((8, side, side)))
        print(f"{out / name}/ort: onnxruntime's int8 exports of {name}")


def main():
    out = Path(sys.argv[1])
    for net in (mobilenet_v2(), resnet18()):
        bundle(net, out)
    demo_peers(out)


if __name__ == "__main__":
    main()
