"""Trains the ultrasound convolutional autoencoder and writes its bundle.

    python train_echo.py DATA OUT_DIR [--steps N] [--quick]

DATA is `scripts/fetch-data`'s directory. Training frames are real ultrasound
(FINDINGS.md section 3): the cardiac cine `color3d_jpeg_baseline.dcm`, frames
0-89, and the stills US1_UNCR, OBXXXX1A and gdcm-US-ALOKA-16 (oversampled ten times), with
small shifts and gain changes as augmentation. Frames 90-119 of the cine are held
out. The reconstruction error (mean absolute, in units of full scale) is
reported on them and on other content: a chest radiograph, CT and MR slices,
a blank screen and noise.

Input: `crop=auto,resize=64x64,quantize`: the active sector only (the Python
port of the runtime's crop in chain.py), then OpenCV's INTER_AREA.
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
from pydicom.pixels import apply_color_lut

sys.path.insert(0, str(Path(__file__).parent))
import nets  # noqa: E402
from chain import crop_auto, resize_area_cv, rgb_to_gray, window  # noqa: E402
from export import quantize_int8_input, quantize_pixels, sha256, write_golden  # noqa: E402

SIDE = 64
CHAIN = f"crop=auto,resize={SIDE}x{SIDE},quantize"
SEED = 7
ROOT = Path(__file__).resolve().parents[2]


def gray_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a DICOM file as 8-bit gray, as the runtime converts it."""
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    pi = ds.PhotometricInterpretation
    if pi == "PALETTE COLOR":
        px = apply_color_lut(px, ds)
        if px.dtype == np.uint16:
            px = (px >> 8).astype(np.uint8)
    frames = px if int(ds.get("NumberOfFrames", 1)) > 1 else px[None]
    if frames.ndim == 4:
        return [rgb_to_gray(f) for f in frames]
    if frames.dtype != np.uint8:
        c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
        c = float(c[0] if isinstance(c, pydicom.multival.MultiValue) else c) if c is not None else None
        w = float(w[0] if isinstance(w, pydicom.multival.MultiValue) else w) if w is not None else None
        out = []
        for f in frames:
            lo, hi = float(f.min()), float(f.max())
            cc, ww = (c, w) if c is not None else ((lo + hi + 1) / 2, hi - lo + 1)
            out.append(window(f, cc, ww, pi == "MONOCHROME1"))
        return out
    return list(frames)


def prep(gray: np.ndarray) -> np.ndarray:
    return resize_area_cv(crop_auto(gray), SIDE)


def mse(spec, params, x, y):
    import jax.numpy as jnp

    return jnp.mean((nets.forward(spec, params, x) - y) ** 2)


def batches(x, size, rng):
    """Random shifts of up to 3 pixels and gain 0.85-1.15: probe position and settings vary."""
    while True:
        idx = rng.choice(len(x), size, replace=len(x) < size)
        xb = x[idx].copy()
        for k in range(size):
            dy, dx = rng.integers(-3, 4, 2)
            xb[k] = np.roll(xb[k], (dy, dx), axis=(1, 2))
        xb = np.clip(xb * rng.uniform(0.85, 1.15, (size, 1, 1, 1)), 0, 1).astype(np.float32)
        yield xb, xb


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--quick", action="store_true", help="a few steps (CI smoke run)")
    a = p.parse_args()
    t0 = time.time()
    store = a.data / "pydicom-data/data_store/data"
    tests = a.data / "pydicom-pkg/pydicom/data/test_files"
    cine = [prep(f) for f in gray_frames(store / "color3d_jpeg_baseline.dcm")]
    stills = [prep(f) for name in ("US1_UNCR.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm")
              for f in gray_frames(store / name)]
    # The stills are few next to 90 cine frames: each is seen ten times as often.
    train = np.array(cine[:90] + stills * 10)
    held = np.array(cine[90:])
    if a.quick:
        train = train[::15]
    rng = np.random.default_rng(SEED)
    xf = (train[:, None] / 255.0).astype(np.float32)
    print(f"train_echo: {len(train)} training frames (cine 0-89 and 3 stills x 10), {len(held)} held out "
          f"({time.time() - t0:.0f} s)", flush=True)

    spec = nets.ECHO
    params = nets.train(spec, nets.init(spec, SEED), mse, batches(xf, 16, rng),
                        5 if a.quick else a.steps, lr=2e-3, log_every=500)

    a.out.mkdir(parents=True, exist_ok=True)
    f32_path, q_path = a.out / "model_f32.onnx", a.out / "model.onnx"
    onnx.save(nets.to_onnx(spec, params, "echo-ae-demo", SIDE, "recon"), str(f32_path))
    sess = ort.InferenceSession(str(f32_path), providers=["CPUExecutionProvider"])
    want = np.asarray(nets.forward(spec, params, xf[:2]))
    got = np.array([sess.run(None, {"image": x[None]})[0][0] for x in xf[:2]])
    assert np.abs(got - want).max() < 1e-3, f"ONNX export differs from JAX: {np.abs(got - want).max()}"
    scale, zp, ops = quantize_int8_input(f32_path, q_path, xf[:, 0])

    qs = ort.InferenceSession(str(q_path), providers=["CPUExecutionProvider"])

    def err(u8s):
        """Mean absolute reconstruction error of the int8 model, per image, full scale = 1."""
        out = []
        for u8 in u8s:
            r = qs.run(None, {"image": quantize_pixels(u8, scale, zp).reshape(1, 1, SIDE, SIDE)})[0]
            out.append(float(np.abs(r.reshape(SIDE, SIDE) - u8 / 255.0).mean()))
        return np.array(out)

    cr = pydicom.dcmread(store / "RG1_UNCR.dcm")
    radiograph = prep(window(cr.pixel_array, float(cr.WindowCenter), float(cr.WindowWidth), True))
    others = {
        "chest radiograph RG1_UNCR": radiograph,
        "CT_small": prep(gray_frames(tests / "CT_small.dcm")[0]),
        "MR_small": prep(gray_frames(tests / "MR_small.dcm")[0]),
        "blank": np.zeros((SIDE, SIDE), np.uint8),
        "noise": rng.integers(0, 256, (SIDE, SIDE)).astype(np.uint8),
    }
    e_train, e_held = err(train), err(held)
    # The threshold comes from the cine's training frames only (never from the
    # held-out or other content): 1.5 x their largest error. The stills are
    # other machines and anatomy; they train the encoder but would set the
    # bar too high for a cart watching one kind of scan.
    e_cine = e_train[:90] if not a.quick else e_train
    e_other = {k: float(err([v])[0]) for k, v in others.items()}
    threshold = float(np.round(e_cine.max() * 1.5, 4))
    report = {"train cine max": float(e_cine.max()), "train max (stills included)": float(e_train.max()),
              "held-out echo median": float(np.median(e_held)), "held-out echo max": float(e_held.max()),
              **e_other}
    print("int8 mean abs reconstruction error:", {k: round(v, 4) for k, v in report.items()})
    print(f"anomaly threshold (1.5 x the largest error on training cine frames): {threshold}")

    demo = prep(gray_frames(ROOT / "assets/demo/echo_cine.dcm")[0])
    inputs = [quantize_pixels(u8, scale, zp) for u8 in (held[0], held[-1], demo, radiograph)]
    write_golden(q_path, inputs, ["echo_frame_90", "echo_frame_119", "demo_echo_cine_frame_0", "RG1_UNCR"],
                 a.out / "golden.json", [None, None, {"file": "assets/demo/echo_cine.dcm", "frame": 0}, None])

    macs, n_params = nets.macs_and_params(spec, SIDE)
    rep = ", ".join(f"{k} {v:.4f}" for k, v in report.items())
    (a.out / "manifest.toml").write_text(f"""# Generated by models/train/train_echo.py; do not edit by hand.
[model]
name = "echo-ae-demo"
version = "0.2.0"
task = "reconstruct"
demonstration = true
description = "Ultrasound sector convolutional autoencoder on 64x64 input (8x8x8 bottleneck, pixel-shuffle decoder, {macs / 1e6:.1f} M MACs, {n_params} parameters); reconstruction error is the anomaly score"

[input]
shape = [1, 1, {SIDE}, {SIDE}]
dtype = "i8"
scale = {scale!r}
zero_point = {zp}
pixel_scale = {1 / 255.0!r}
preprocess = "{CHAIN}"

[output]
shape = [1, 1, {SIDE}, {SIDE}]
kind = "reconstruction"
labels = []

[thresholds]
anomaly_error = {threshold}

[files.int8]
path = "model.onnx"
sha256 = "{sha256(q_path)}"

[files.f32]
path = "model_f32.onnx"
sha256 = "{sha256(f32_path)}"

[provenance]
trained_on = "real ultrasound from pydicom-data 1.0.0 (NEMA/GDCM test data, MIT package): cardiac cine color3d_jpeg_baseline.dcm frames 0-89, stills US1_UNCR, OBXXXX1A, gdcm-US-ALOKA-16; frames 90-119 held out"
evaluation = "int8 mean abs reconstruction error (full scale 1): {rep}"
ops = {json.dumps(ops)}
licence = "MIT OR Apache-2.0"
""")
    print(f"train_echo: wrote {a.out} ({macs / 1e6:.1f} M MACs, {n_params} parameters, "
          f"int8 {q_path.stat().st_size} B, f32 {f32_path.stat().st_size} B) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
