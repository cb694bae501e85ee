"""The X-ray bundle's pixel gate: an out-of-distribution score computed
inside the model's own graphs, with its threshold set on held-out images.

    python gate.py BUNDLE TRAIN_ROOT HELD_OUT_ROOT

(train_xray.py runs it at the end of training; run by hand it refits the
gate of an existing bundle.)

Why: a classifier answers every picture with a class, and a CT slice, a
photograph or a page of text gets one at over 95%. The gate asks a
different question before the answer is shown: does this picture look like
the pictures the model was made for?

What it measures, per image, in one 288-number vector:
  - the layout: the model input (128x128, after CLAHE) averaged over 8x8
    blocks, 256 numbers in [0, 1] (where the lungs, the mediastinum and the
    edges of the film are);
  - what the model sees: the mean over the 8x8 positions of each of the 32
    channels of the last convolution (texture and structure the classifier
    was trained to read).
Each number is standardized by its mean and spread over the training
images; the score is the Mahalanobis distance in the first K principal
components plus the squared distance from their subspace over its mean on
the training images (PCA with a residual term; K = 16). A picture like the
training images scores about K + 1; the threshold is 1.1 x the largest
score on the held-out images.

The computation is appended to both graphs (model.onnx reads the int8
input and the last convolution's int8 output through DequantizeLinear) as a
second output, "ood_score" [1, 1]; the manifest's [gate] table names the
output and holds the threshold. The constants are fitted on what the int8
graph computes (what bedside runs by default); the f32 graph's own
features differ from them by the quantization error only, and its held-out
scores are checked against the same threshold. The sha256 of both files,
the declared operators and golden.json (each case's score, as onnxruntime
computes it) are rewritten.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
from export import quantize_pixels, sha256  # noqa: E402

OUTPUT = "ood_score"
BLOCK = 8
COMPONENTS = 16
MARGIN = 1.1
# The last convolution's output, before the flatten (nets.XRAY; ReLU fused in int8).
LAST_CONV = {"model.onnx": "conv11_quantized", "model_f32.onnx": "relu12"}


def strip_gate(g: onnx.GraphProto) -> None:
    """Removes an earlier gate (its nodes, constants and output), so a
    bundle's gate can be refitted."""
    keep = [n for n in g.node if not all(o.startswith("gate_") or o == OUTPUT for o in n.output)]
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if not i.name.startswith("gate_")]
    del g.initializer[:]
    g.initializer.extend(inits)
    outs = [o for o in g.output if o.name != OUTPUT]
    del g.output[:]
    g.output.extend(outs)


def feature_nodes(g: onnx.GraphProto, int8: bool, last: str, last_hw: tuple[int, int]) -> list:
    """Nodes computing "gate_features" [1, 256 + C] from the graph's input and
    `last` ([1, C, H, W]). Pools and flattens only: tract's reductions
    allocate per run, its pools do not (tests/no_alloc.rs)."""
    nodes = []
    image = "image"
    if int8:
        nodes.append(helper.make_node("DequantizeLinear", ["image", "image_scale", "image_zero_point"], ["gate_image"]))
        image = "gate_image"
        conv = next(n for n in g.node if last in n.output)
        nodes.append(helper.make_node("DequantizeLinear", [last, conv.input[6], conv.input[7]], ["gate_last"]))
        last = "gate_last"
    nodes += [
        helper.make_node("AveragePool", [image], ["gate_blocks"], kernel_shape=[BLOCK, BLOCK], strides=[BLOCK, BLOCK]),
        helper.make_node("Flatten", ["gate_blocks"], ["gate_layout"], axis=1),
        helper.make_node("AveragePool", [last], ["gate_pooled"], kernel_shape=list(last_hw)),
        helper.make_node("Flatten", ["gate_pooled"], ["gate_channels"], axis=1),
        helper.make_node("Concat", ["gate_layout", "gate_channels"], ["gate_features"], axis=1),
    ]
    return nodes


def last_hw(path: Path) -> tuple[int, int]:
    """Height and width of the last convolution's output."""
    m = onnx.load(str(path))
    strip_gate(m.graph)
    inferred = onnx.shape_inference.infer_shapes(m)
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        if v.name == LAST_CONV[path.name]:
            dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
            return dims[2], dims[3]
    sys.exit(f"gate: {path}: no shape for {LAST_CONV[path.name]}")


def with_features(path: Path) -> bytes:
    """The graph with its gate features as a second output (for fitting)."""
    hw = last_hw(path)
    m = onnx.load(str(path))
    strip_gate(m.graph)
    int8 = m.graph.input[0].type.tensor_type.elem_type == TensorProto.INT8
    m.graph.node.extend(feature_nodes(m.graph, int8, LAST_CONV[path.name], hw))
    m.graph.output.append(helper.make_tensor_value_info("gate_features", TensorProto.FLOAT, None))
    return m.SerializeToString()


def run_all(model: bytes, inputs: np.ndarray, out: int) -> np.ndarray:
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    shape = s.get_inputs()[0].shape
    return np.array([s.run(None, {name: x.reshape(shape)})[out][0] for x in inputs])


def fit(f: np.ndarray, k: int) -> dict:
    """Standardization, the first k principal directions, their variances and
    the mean squared residual, on the training features."""
    mean = f.mean(0)
    spread = f.std(0) + 1e-3  # a feature constant over the training set stays finite
    z = (f - mean) / spread
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    k = min(k, len(z) - 1)
    v = vt[:k]
    var = s[:k] ** 2 / (len(z) - 1)
    resid = ((z - z @ v.T @ v) ** 2).sum(1).mean()
    return {"mean": mean, "spread": spread, "v": v, "var": var, "resid": max(resid, 1e-6)}


def score(p: dict, f: np.ndarray) -> np.ndarray:
    z = (f - p["mean"]) / p["spread"]
    proj = z @ p["v"].T
    return (proj**2 / p["var"]).sum(1) + ((z**2).sum(1) - (proj**2).sum(1)) / p["resid"]


def score_nodes(p: dict) -> tuple[list, list]:
    """Nodes from "gate_features" to OUTPUT, and their constants. With z the
    standardized features and y = z V' their projection,
        score = sum(y^2 / var) + (|z|^2 - |y|^2) / resid
              = |z|^2 / resid + y^2 . (1 / var - 1 / resid),
    two matrix products and no reduction."""
    c = lambda name, a: numpy_helper.from_array(np.asarray(a, np.float32), name)  # noqa: E731
    inits = [
        c("gate_mean", p["mean"][None]),
        c("gate_inv_spread", 1.0 / p["spread"][None]),
        c("gate_directions", p["v"].T),
        c("gate_within", (1.0 / p["var"] - 1.0 / p["resid"])[:, None]),
        c("gate_total", np.full((len(p["mean"]), 1), 1.0 / p["resid"])),
    ]
    n = helper.make_node
    nodes = [
        n("Sub", ["gate_features", "gate_mean"], ["gate_centred"]),
        n("Mul", ["gate_centred", "gate_inv_spread"], ["gate_z"]),
        n("MatMul", ["gate_z", "gate_directions"], ["gate_proj"]),
        n("Mul", ["gate_proj", "gate_proj"], ["gate_proj2"]),
        n("MatMul", ["gate_proj2", "gate_within"], ["gate_inside"]),
        n("Mul", ["gate_z", "gate_z"], ["gate_z2"]),
        n("MatMul", ["gate_z2", "gate_total"], ["gate_all"]),
        n("Add", ["gate_all", "gate_inside"], [OUTPUT]),
    ]
    return nodes, inits


def append_gate(path: Path, p: dict) -> list[str]:
    """Rewrites the graph at `path` with OUTPUT as its second output; returns its operators."""
    hw = last_hw(path)
    m = onnx.load(str(path))
    g = m.graph
    strip_gate(g)
    int8 = g.input[0].type.tensor_type.elem_type == TensorProto.INT8
    nodes, inits = score_nodes(p)
    g.node.extend(feature_nodes(g, int8, LAST_CONV[path.name], hw) + nodes)
    g.initializer.extend(inits)
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 1]))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return sorted({nd.op_type for nd in g.node})


def add_gate(bundle: Path, x_train: np.ndarray, x_held: np.ndarray, held_name: str) -> float:
    """Fits the gate on uint8 model inputs [N, 128, 128], sets its threshold
    on the held-out ones, appends it to both graphs and updates the
    manifest and golden.json. Returns the threshold."""
    manifest = (bundle / "manifest.toml").read_text()
    scale = float(re.search(r"^scale = (\S+)", manifest, re.M).group(1))
    zp = int(re.search(r"^zero_point = (\S+)", manifest, re.M).group(1))
    q_path, f_path = bundle / "model.onnx", bundle / "model_f32.onnx"
    q_feat = with_features(q_path)
    f_train = run_all(q_feat, quantize_pixels(x_train, scale, zp), 1)
    p = fit(f_train, COMPONENTS)
    held = score(p, run_all(q_feat, quantize_pixels(x_held, scale, zp), 1))
    threshold = float(held.max() * MARGIN)
    train = score(p, f_train)
    ops = append_gate(q_path, p)
    append_gate(f_path, p)
    # Both graphs, as onnxruntime runs them, against the threshold.
    q_held = run_all(q_path.read_bytes(), quantize_pixels(x_held, scale, zp), 1)[:, 0]
    f_held = run_all(f_path.read_bytes(), (x_held[:, None] / 255.0).astype(np.float32), 1)[:, 0]
    assert np.allclose(q_held, held, rtol=1e-3, atol=1e-2), "the int8 graph's score differs from the fit"
    print(f"gate: {len(x_train)} training images: median score {np.median(train):.1f}, max {train.max():.1f}; "
          f"{len(x_held)} held out: max {held.max():.1f} (int8), {f_held.max():.1f} (f32); "
          f"threshold {threshold:.2f}; held out over it: int8 {int((q_held > threshold).sum())}, "
          f"f32 {int((f_held > threshold).sum())}", flush=True)

    manifest = re.sub(r'(\[files\.int8\]\npath = "model.onnx"\nsha256 = ")[0-9a-f]+', rf"\g<1>{sha256(q_path)}", manifest)
    manifest = re.sub(r'(\[files\.f32\]\npath = "model_f32.onnx"\nsha256 = ")[0-9a-f]+', rf"\g<1>{sha256(f_path)}", manifest)
    manifest = re.sub(r"^ops = .*$", f"ops = {json.dumps(ops)}", manifest, flags=re.M)
    manifest = re.sub(r"\n\[gate\]\n(?:[^\[\n].*\n)*\n?", "\n", manifest)
    table = f"""[gate]
output = "{OUTPUT}"
threshold = {threshold:.4f}
features = "8x8-block means of the model input (256) and per-channel means of the last convolution (32), standardized; Mahalanobis distance in {p['v'].shape[0]} principal components plus the residual"
fitted_on = "{len(x_train)} training images; threshold {MARGIN} x the largest score on {len(x_held)} held-out images ({held_name})"
held_out_max = {held.max():.4f}

"""
    manifest = manifest.replace("[files.int8]", table + "[files.int8]", 1)
    (bundle / "manifest.toml").write_text(manifest)

    golden_path = bundle / "golden.json"
    golden = json.loads(golden_path.read_text())
    s = ort.InferenceSession(str(q_path), providers=["CPUExecutionProvider"])
    for case in golden["cases"]:
        x = np.array(case["input"], np.int8).reshape(s.get_inputs()[0].shape)
        case["gate_score"] = float(s.run(None, {"image": x})[1].ravel()[0])
    golden_path.write_text(json.dumps(golden) + "\n")
    return threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("train_root", type=Path)
    ap.add_argument("held_out_root", type=Path)
    a = ap.parse_args()
    from train_xray import load

    x, _, _ = load(a.train_root)
    xte, _, _ = load(a.held_out_root)
    add_gate(a.bundle, x, xte, a.held_out_root.name)


if __name__ == "__main__":
    main()
