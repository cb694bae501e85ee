"""Trains the 4-class chest radiograph classifier and writes its bundle.

    python train_xray.py ROOT OUT_DIR --data DATA [--test-root TEST] [--steps N] [--quick]

ROOT has the layout of the COVID-19 Radiography Database
(`ROOT/COVID|Normal|Viral Pneumonia|Lung_Opacity/images/*.png`): the real
database when you have it, or phantoms from `phantoms.py`. Without
`--test-root`, 15% of each class is held out. DATA is `scripts/fetch-data`'s
directory (the real radiograph RG1_UNCR, on which the outputs are reported).

Input: `crop=auto,resize=128x128,clahe=2.0:8x8,quantize`, the runtime's chain;
here with chain.py's port of `crop=auto` and OpenCV's INTER_AREA and CLAHE,
which the runtime matches (tests/integration/opencv_fidelity.rs). The crop
takes a radiograph shown on a console's screen out of its black surround (a
live feed); on the phantoms and on full-frame radiographs it keeps the
whole picture.
Writes OUT_DIR/model_f32.onnx, model.onnx (QOperator int8), golden.json,
manifest.toml, and prints per-class F1 on the held-out set. Then
calibrate.py fits the temperature (with --test-root) and gate.py the pixel
gate, both on the held-out set.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pydicom
from PIL import Image
from sklearn.metrics import confusion_matrix, f1_score

sys.path.insert(0, str(Path(__file__).parent))
import nets  # noqa: E402
from chain import clahe, crop_auto, resize_area_cv, window  # noqa: E402
from export import quantize_int8_input, quantize_pixels, sha256, write_golden  # noqa: E402
from phantoms import CLASSES  # noqa: E402

SIDE = 128
CHAIN = f"crop=auto,resize={SIDE}x{SIDE},clahe=2.0:8x8,quantize"
SEED = 7


def prep(u8: np.ndarray) -> np.ndarray:
    """The chain up to quantization: uint8 [SIDE, SIDE]."""
    return clahe(resize_area_cv(crop_auto(u8), SIDE), 2.0, 8)


def load(root: Path, limit: int | None = None):
    xs, ys, names = [], [], []
    for ci, c in enumerate(CLASSES):
        files = sorted((root / c / "images").glob("*.png"), key=lambda p: (len(p.name), p.name))
        if not files:
            sys.exit(f"train_xray: {root / c / 'images'}: no PNG images")
        for f in files[:limit]:
            img = Image.open(f).convert("L")
            xs.append(prep(np.asarray(img)))
            ys.append(ci)
            names.append(f.name)
    return np.array(xs), np.array(ys), names


def xent(spec, params, x, y):
    import jax
    import jax.numpy as jnp

    logits = nets.forward(spec, params, x)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, len(CLASSES)), axis=1))


def batches(x, y, size, rng):
    """Augmented minibatches: shifts of up to 6 pixels (positioning) and gain
    0.9-1.1 (exposure). No mirroring: the heart's side is anatomy."""
    while True:
        idx = rng.choice(len(x), size, replace=False)
        xb = x[idx].copy()
        for k in range(size):
            dy, dx = rng.integers(-6, 7, 2)
            xb[k] = np.roll(xb[k], (dy, dx), axis=(1, 2))
        jitter = rng.uniform(0.9, 1.1, (size, 1, 1, 1)).astype(np.float32)
        yield np.clip(xb * jitter, 0, 1), y[idx]


def ort_run(path: Path, inputs_i8: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.array([sess.run(None, {name: x.reshape(1, 1, SIDE, SIDE)})[0][0] for x in inputs_i8])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--test-root", type=Path)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--quick", action="store_true", help="a few steps on a few images (CI smoke run)")
    p.add_argument("--diagram", type=Path, help="the calibration's reliability diagram (PNG)")
    a = p.parse_args()
    t0 = time.time()
    limit = 6 if a.quick else None
    steps = 5 if a.quick else a.steps
    rng = np.random.default_rng(SEED)

    x, y, _ = load(a.root, limit)
    if a.test_root:
        xte, yte, _ = load(a.test_root, limit)
    else:
        held = np.zeros(len(y), bool)
        for c in range(len(CLASSES)):
            idx = np.flatnonzero(y == c)
            held[rng.choice(idx, max(1, len(idx) * 15 // 100), replace=False)] = True
        x, xte, y, yte = x[~held], x[held], y[~held], y[held]
    print(f"train_xray: {len(x)} training images, {len(xte)} held out ({time.time() - t0:.0f} s)", flush=True)
    xf = (x[:, None] / 255.0).astype(np.float32)
    xtef = (xte[:, None] / 255.0).astype(np.float32)

    spec = nets.XRAY
    params = nets.train(spec, nets.init(spec, SEED), xent, batches(xf, y, min(32, len(xf)), rng),
                        steps, lr=1e-3, log_every=100, wd=1e-2)

    a.out.mkdir(parents=True, exist_ok=True)
    f32_path, q_path = a.out / "model_f32.onnx", a.out / "model.onnx"
    onnx.save(nets.to_onnx(spec, params, "xray-demo", SIDE, "logits"), str(f32_path))
    # The exported graph computes what JAX trained.
    sess = ort.InferenceSession(str(f32_path), providers=["CPUExecutionProvider"])
    probe = xtef[:4]
    want = np.asarray(nets.forward(spec, params, probe))
    got = np.array([sess.run(None, {"image": p[None]})[0][0] for p in probe])
    assert np.abs(got - want).max() < 1e-3, f"ONNX export differs from JAX: {np.abs(got - want).max()}"

    scale, zp, ops = quantize_int8_input(f32_path, q_path, xf[:200, 0])
    q_logits = ort_run(q_path, quantize_pixels(xte, scale, zp))
    pred_f32 = np.asarray(nets.forward(spec, params, xtef)).argmax(axis=1)
    f1_f32 = f1_score(yte, pred_f32, average=None, labels=range(len(CLASSES)), zero_division=0)
    f1_q = f1_score(yte, q_logits.argmax(axis=1), average=None, labels=range(len(CLASSES)), zero_division=0)
    print("held-out F1 per class (f32):", dict(zip(CLASSES, np.round(f1_f32, 3))))
    print("held-out F1 per class (int8, onnxruntime):", dict(zip(CLASSES, np.round(f1_q, 3))))
    print("confusion (int8; rows true, columns predicted, order", CLASSES, "):")
    print(confusion_matrix(yte, q_logits.argmax(axis=1), labels=range(len(CLASSES))))

    # The real radiograph, full size, through the same chain.
    ds = pydicom.dcmread(a.data / "pydicom-data/data_store/data/RG1_UNCR.dcm")
    real = prep(window(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth),
                       ds.PhotometricInterpretation == "MONOCHROME1"))
    demo_path = Path(__file__).resolve().parents[2] / "assets/demo/chest_cr.dcm"
    dd = pydicom.dcmread(demo_path)
    demo = prep(window(dd.pixel_array, float(dd.WindowCenter), float(dd.WindowWidth),
                       dd.PhotometricInterpretation == "MONOCHROME1"))
    real_q = quantize_pixels(np.stack([real, demo]), scale, zp)
    real_probs = softmax(ort_run(q_path, real_q))
    for name, pr in zip(["RG1_UNCR", "assets/demo/chest_cr.dcm"], real_probs):
        print(f"int8 model on the real radiograph {name}:", dict(zip(CLASSES, np.round(pr, 3))))

    # Golden: the real radiograph, the demo derivative (with its source, so the
    # Rust tests can also check the runtime's chain reproduces this input), and
    # one held-out image per class.
    per_class = [int(np.flatnonzero(yte == c)[0]) for c in range(len(CLASSES))]
    inputs = [real_q[0], real_q[1]] + [quantize_pixels(xte[i], scale, zp) for i in per_class]
    names = ["RG1_UNCR", "demo_chest_cr"] + [f"held_out_{CLASSES[yte[i]]}" for i in per_class]
    sources = [None, {"file": "assets/demo/chest_cr.dcm", "frame": 0}] + [None] * len(per_class)
    write_golden(q_path, inputs, names, a.out / "golden.json", sources)

    macs, n_params = nets.macs_and_params(spec, SIDE)
    f1_text = ", ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, f1_q))
    real_text = ", ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, real_probs[0]))
    trained_on = (f"{a.root.name}: {len(x)} images" + (", held-out set " + a.test_root.name if a.test_root else ""))
    (a.out / "manifest.toml").write_text(f"""# Generated by models/train/train_xray.py; do not edit by hand.
[model]
name = "xray-demo"
version = "0.2.0"
task = "classify"
demonstration = true
description = "Chest radiograph 4-class CNN (6 plain 3x3 convolutions, {macs / 1e6:.1f} M MACs, {n_params} parameters) on 128x128 CLAHE input, trained on procedural phantoms only"

[input]
shape = [1, 1, {SIDE}, {SIDE}]
dtype = "i8"
scale = {scale!r}
zero_point = {zp}
pixel_scale = {1 / 255.0!r}
preprocess = "{CHAIN}"

[output]
shape = [1, {len(CLASSES)}]
kind = "logits"
labels = {json.dumps(CLASSES)}

[thresholds]
min_confidence = 0.5

[files.int8]
path = "model.onnx"
sha256 = "{sha256(q_path)}"

[files.f32]
path = "model_f32.onnx"
sha256 = "{sha256(f32_path)}"

[provenance]
trained_on = "procedural chest phantoms (models/train/phantoms.py), {trained_on}; no real labelled data"
evaluation = "int8 held-out phantom F1: {f1_text}; on the real radiograph RG1_UNCR (pydicom-data, not labelled for these classes): {real_text}"
ops = {json.dumps(ops)}
licence = "MIT OR Apache-2.0"
""")
    if a.test_root:
        # Temperature scaling on the held-out set (calibrate.py): a
        # [calibration] table in the manifest, applied by bedside.
        from calibrate import calibrate
        calibrate(a.out, xte, yte, a.test_root.name, a.diagram)
    # The pixel gate (gate.py): an out-of-distribution score appended to both
    # graphs, its threshold set on the held-out images, a [gate] table.
    from gate import add_gate
    add_gate(a.out, x, xte, a.test_root.name if a.test_root else "15% of ROOT")
    print(f"train_xray: wrote {a.out} ({macs / 1e6:.1f} M MACs, {n_params} parameters, "
          f"int8 {q_path.stat().st_size} B, f32 {f32_path.stat().st_size} B) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
