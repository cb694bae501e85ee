"""Temperature scaling for a classifier bundle: fit, measure, write.

    python calibrate.py BUNDLE HELD_OUT_ROOT [--diagram FILE.png]

A classifier trained to a low cross-entropy is over-confident: its top
probability runs ahead of how often it is right. One number fixes most of
that (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the
logits are divided by a temperature T before the softmax, with T chosen to
minimise the negative log-likelihood on held-out images. T does not change
which class is on top, only how sure the probabilities say it is.

The held-out images (the COVID-19 Radiography Database layout: one folder
per class with images/*.png) are split in two by position: the even ones
fit T, the odd ones measure the expected calibration error (ECE, 10 equal
bins of the top probability: the mean gap between confidence and accuracy,
weighted by the bin's share) before and after. The bundle's int8 model is
run through onnxruntime on the bundle's own preprocessing (train_xray.py's
`prep`). The result goes into the bundle's manifest as a [calibration]
table, which bedside applies at run time; `train_xray.py` calls this at the
end of training.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from export import quantize_pixels  # noqa: E402

BINS = 10


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = softmax(logits / t)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(p, 1e-12)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 50] with the least NLL: a log grid, then a finer one."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(50.0), 241))
    best = min(grid, key=lambda t: nll(logits, labels, t))
    fine = best * np.exp(np.linspace(-0.03, 0.03, 61))
    return float(min(fine, key=lambda t: nll(logits, labels, t)))


def reliability(probs: np.ndarray, labels: np.ndarray):
    """Per bin of the top probability: (count, mean confidence, accuracy); and the ECE."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    rows, ece = [], 0.0
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        sel = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        n = int(sel.sum())
        if n:
            c, a = float(conf[sel].mean()), float(right[sel].mean())
            ece += n / len(labels) * abs(c - a)
            rows.append((n, c, a))
        else:
            rows.append((0, None, None))
    return rows, float(ece)


def diagram(before, after, path: Path, title: str) -> None:
    """Reliability diagram: accuracy per confidence bin, before (grey) and
    after (blue) temperature scaling; the diagonal is perfect calibration."""
    w, h, m = 520, 440, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    side = min(w, h) - 2 * m
    x0, y0 = m, m + side
    d.rectangle([x0, y0 - side, x0 + side, y0], outline="black")
    d.line([x0, y0, x0 + side, y0 - side], fill=(160, 160, 160))
    bw = side / BINS
    for rows, colour, off in ((before, (170, 170, 170), 0.1), (after, (40, 90, 200), 0.5)):
        for b, (n, _, acc) in enumerate(rows):
            if n:
                xa = x0 + (b + off) * bw
                d.rectangle([xa, y0 - acc * side, xa + 0.4 * bw, y0], fill=colour)
    d.text((x0, 10), title, fill="black")
    d.text((x0 - 3, y0 + 8), "0", fill="black")
    d.text((x0 + side - 3, y0 + 8), "1", fill="black")
    d.text((x0 + side / 2 - 100, y0 + 8), "top probability (confidence), 10 bins", fill="black")
    d.text((x0 + side + 6, y0 - side), "accuracy", fill="black")
    d.text((x0 + side - 150, y0 - side + 6), "grey: before  blue: after", fill="black")
    img.save(path)


def write_manifest(manifest: Path, t: float, fitted_on: str, ece_before: float, ece_after: float) -> None:
    """Puts a [calibration] table before [files.int8], replacing any there
    (running this twice gives the same file)."""
    lines, keep, skipping = manifest.read_text().splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == "[calibration]"
        if not skipping:
            keep.append(line)
    text = "".join(keep)
    if "[files.int8]" not in text:
        sys.exit(f"calibrate: {manifest}: no [files.int8] table")
    table = (f"[calibration]\ntemperature = {t:.4f}\nfitted_on = \"{fitted_on}\"\n"
             f"ece_before = {ece_before:.4f}\nece_after = {ece_after:.4f}\n\n")
    manifest.write_text(text.replace("[files.int8]", table + "[files.int8]", 1))


def calibrate(bundle: Path, x_u8: np.ndarray, y: np.ndarray, held_name: str, diagram_path: Path | None):
    """Fits T on the even held-out images, reports ECE on the odd ones, writes the manifest."""
    import onnxruntime as ort
    import tomllib

    m = tomllib.loads((bundle / "manifest.toml").read_text())
    scale, zp = m["input"]["scale"], m["input"]["zero_point"]
    side = m["input"]["shape"][-1]
    sess = ort.InferenceSession(str(bundle / m["files"]["int8"]["path"]), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    q = quantize_pixels(x_u8, scale, zp)
    logits = np.array([sess.run(None, {name: v.reshape(1, 1, side, side)})[0][0] for v in q])
    fit, test = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    t = fit_temperature(logits[fit], y[fit])
    before, ece_before = reliability(softmax(logits[test]), y[test])
    after, ece_after = reliability(softmax(logits[test] / t), y[test])
    conf_b = softmax(logits[test]).max(axis=1).mean()
    conf_a = softmax(logits[test] / t).max(axis=1).mean()
    acc = (logits[test].argmax(axis=1) == y[test]).mean()
    print(f"calibrate: T = {t:.4f} (fitted on {len(fit)} held-out images, NLL "
          f"{nll(logits[fit], y[fit], 1.0):.4f} -> {nll(logits[fit], y[fit], t):.4f}); on the other {len(test)}: "
          f"accuracy {acc:.3f}, mean top probability {conf_b:.3f} -> {conf_a:.3f}, ECE {ece_before:.4f} -> {ece_after:.4f}")
    for b, ((n, cb, ab), (_, ca, aa)) in enumerate(zip(before, after)):
        if n or ca is not None:
            print(f"  bin {b / BINS:.1f}-{(b + 1) / BINS:.1f}: before {n} images"
                  + (f", confidence {cb:.3f}, accuracy {ab:.3f}" if n else ""))
    for b, (n, c, a) in enumerate(after):
        if n:
            print(f"  after, bin {b / BINS:.1f}-{(b + 1) / BINS:.1f}: {n} images, confidence {c:.3f}, accuracy {a:.3f}")
    fitted_on = f"{held_name}: {len(fit)} held-out images (even positions); ECE on the other {len(test)}"
    write_manifest(bundle / "manifest.toml", t, fitted_on, ece_before, ece_after)
    if diagram_path:
        diagram(before, after, diagram_path,
                f"{m['model']['name']} {m['model']['version']}: T = {t:.2f}, ECE {ece_before:.3f} -> {ece_after:.3f}")
        print(f"calibrate: reliability diagram {diagram_path}")
    return t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle", type=Path)
    p.add_argument("held_out", type=Path)
    p.add_argument("--diagram", type=Path)
    a = p.parse_args()
    from train_xray import load

    x, y, _ = load(a.held_out)
    calibrate(a.bundle, x, y, a.held_out.name, a.diagram)


if __name__ == "__main__":
    main()
