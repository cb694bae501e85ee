"""Procedural chest-radiograph phantoms in the layout of the COVID-19 Radiography Database.

No labelled chest X-ray set is reachable from this machine (FINDINGS.md
section 3), so the X-ray demonstration model is trained on these. Each image
is a 299x299 8-bit PA view, as in the database: soft-tissue thorax with
shoulders, two lungs with vessel markings, posterior and anterior ribs,
clavicles, spine and trachea, heart shadow (to the left of the patient, right
of the image), diaphragm domes (the patient's right one higher) with
costophrenic angles, then exposure, scatter blur and detector noise. Anatomy,
position, rotation and exposure vary per image.

The class-specific findings follow the radiology of the database's classes:

- COVID: bilateral, peripheral, lower-zone ground-glass opacities (hazy,
  several patches per side, vessels still visible through them);
- Viral Pneumonia: a diffuse bilateral interstitial (reticular) pattern,
  perihilar-weighted;
- Lung_Opacity: one focal consolidation (dense, lobar-sized, with air
  bronchograms), either lung, any zone;
- Normal: none.

Severity varies, so some findings are subtle. A model trained on these is a
demonstration model: phantoms are not patients.

    python phantoms.py OUT_ROOT --per-class N [--seed S]

writes OUT_ROOT/<class>/images/<class>-<i>.png (the database's names).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, map_coordinates

CLASSES = ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]
SIZE = 299


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def _smooth_mask(d2, soft=0.08):
    """1 inside an ellipse distance d2 <= 1, falling off smoothly over `soft`."""
    return np.clip((1.0 + soft - np.sqrt(d2)) / soft, 0.0, 1.0)


def _lungs(yy, xx, rng, j):
    """Two lung fields, each an ellipse cut by the mediastinum and the diaphragm."""
    fields = []
    for side in (-1, 1):  # -1: image left = patient right
        cx = 0.5 + side * (0.2 + j(0.012))
        cy = 0.47 + j(0.015)
        ry, rx = 0.29 + j(0.02), 0.135 + j(0.01)
        m = _smooth_mask(_ellipse(yy, xx, cy, cx, ry, rx), 0.1)
        # Narrow at the apex, wider at the base.
        m *= np.clip(1.0 - 0.6 * np.clip((cy - ry * 0.6 - yy) / 0.12, 0, 1) * (np.abs(xx - cx) / rx), 0, 1)
        fields.append(m)
    return fields


def chest(cls: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One phantom of class `cls` as uint8 (size x size); brighter is denser."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    j = lambda s: rng.normal(0.0, s)  # noqa: E731

    # Soft tissue: thorax and shoulders on a dark (air) background.
    img = np.full((size, size), 0.06 + abs(j(0.02)))
    body = _smooth_mask(_ellipse(yy, xx, 0.62 + j(0.02), 0.5 + j(0.01), 0.55 + j(0.03), 0.47 + j(0.02)), 0.06)
    shoulders = _smooth_mask(_ellipse(yy, xx, 0.08 + j(0.02), 0.5, 0.18, 0.62 + j(0.03)), 0.2)
    img += (0.5 + j(0.04)) * np.maximum(body, shoulders * 0.8)

    # Lungs are darker than soft tissue (air), with vessel markings fanning from the hila.
    left, right = _lungs(yy, xx, rng, j)
    lungs = np.maximum(left, right)
    img -= (0.3 + j(0.03)) * lungs * (1.0 - 0.25 * yy)
    vessels = np.zeros_like(img)
    for side, m in ((-1, left), (1, right)):
        hy, hx = 0.45 + j(0.02), 0.5 + side * 0.1
        ang = np.arctan2(yy - hy, (xx - hx) * side)
        rad = np.hypot(yy - hy, xx - hx)
        branches = np.cos(ang * (9 + rng.integers(0, 4)) + rng.uniform(0, 6)) ** 8
        vessels += m * branches * np.exp(-rad / 0.22) * 0.12
    img += gaussian_filter(vessels, 1.0)

    # Ribs: posterior arcs (bright, curved down laterally) and fainter anterior ones.
    ribs = np.zeros_like(img)
    n_ribs = 9 + rng.integers(0, 2)
    spacing = 0.062 + j(0.003)
    tilt = j(0.02)
    for k in range(n_ribs):
        y0 = 0.17 + k * spacing
        for side in (-1, 1):
            dx = (xx - 0.5) * side
            curve = y0 + 0.28 * dx**2 + 0.1 * dx + tilt * dx * side
            band = np.exp(-(((yy - curve) / (0.008 + 0.0006 * k)) ** 2)) * (dx > 0.02) * (dx < 0.42)
            ribs += band * 0.11
            ant = y0 + 0.05 - 0.12 * dx + 0.3 * (dx - 0.25) ** 2
            ribs += np.exp(-(((yy - ant) / 0.007) ** 2)) * (dx > 0.12) * (dx < 0.4) * 0.05
    img += ribs * np.maximum(lungs, 0.3 * body)

    # Spine, trachea (dark), clavicles.
    img += (0.08 + j(0.015)) * np.exp(-(((xx - 0.5 - j(0.004)) / 0.035) ** 2)) * (yy > 0.1)
    img -= 0.1 * np.exp(-(((xx - 0.5) / 0.012) ** 2)) * (yy > 0.08) * (yy < 0.38)
    for side in (-1, 1):
        dx = (xx - 0.5) * side
        cl = 0.19 + j(0.01) - 0.12 * dx + 0.25 * dx**2
        img += 0.2 * np.exp(-(((yy - cl) / 0.012) ** 2)) * (dx > 0.03) * (dx < 0.33)

    # Heart: to the patient's left (image right), size varies (cardiothoracic ratio).
    heart = _smooth_mask(
        _ellipse(yy, xx, 0.62 + j(0.02), 0.55 + j(0.015), 0.14 + j(0.015), 0.13 + abs(j(0.02))), 0.12
    )
    img += (0.16 + j(0.02)) * heart
    img += 0.08 * np.exp(-(((xx - 0.5) / 0.06) ** 2)) * (yy > 0.3) * (yy < 0.75)  # mediastinum

    # Diaphragm domes: the patient's right (image left) higher; below them, abdomen.
    for side, lift in ((-1, 0.025), (1, 0.0)):
        dx = (xx - 0.5) * side
        dome = 0.76 - lift + j(0.015) + 0.5 * (dx - 0.2) ** 2
        below = 1 / (1 + np.exp(-(yy - dome) / 0.008))
        img += below * (dx > 0) * (0.33 + j(0.03)) * body

    # Findings, inside the lungs only.
    finding = np.zeros_like(img)
    severity = rng.uniform(0.4, 1.0)
    if cls == "COVID":
        for m, side in ((left, -1), (right, 1)):
            for _ in range(rng.integers(2, 5)):
                cy = rng.uniform(0.52, 0.74)
                cx = 0.5 + side * rng.uniform(0.25, 0.33)  # peripheral
                ry, rx = rng.uniform(0.05, 0.1), rng.uniform(0.03, 0.06)
                finding += 0.16 * severity * np.exp(-_ellipse(yy, xx, cy, cx, ry, rx))
        finding = gaussian_filter(finding * (1 + 0.3 * rng.normal(0, 1, img.shape)), 2.0)
    elif cls == "Viral Pneumonia":
        net = gaussian_filter(rng.normal(0, 1, img.shape), 1.2)
        reticular = np.clip(np.abs(net) < 0.08, 0, 1).astype(np.float64)  # thin lines
        perihilar = np.exp(-(((xx - 0.5) / 0.3) ** 2)) * (0.6 + 0.4 * yy)
        finding = gaussian_filter(reticular, 0.7) * 0.16 * severity * perihilar
        finding += 0.05 * severity * perihilar
    elif cls == "Lung_Opacity":
        m_side = rng.integers(0, 2)
        side = -1 if m_side == 0 else 1
        cy, cx = rng.uniform(0.3, 0.68), 0.5 + side * rng.uniform(0.15, 0.26)
        ry, rx = rng.uniform(0.06, 0.12), rng.uniform(0.05, 0.09)
        blob = _smooth_mask(_ellipse(yy, xx, cy, cx, ry, rx), 0.35)
        # Air bronchograms: dark branching lines inside the consolidation.
        ang = np.arctan2(yy - cy, xx - cx)
        bronch = gaussian_filter((np.cos(ang * 3 + rng.uniform(0, 6)) ** 24) * 0.25 * blob, 2.0)
        finding = (0.28 + 0.12 * severity) * blob * (1 - bronch)
    img += finding * lungs

    # Patient rotation and position, then acquisition: blur, exposure, noise.
    angle = j(0.04)
    shift_y, shift_x = j(0.02) * size, j(0.02) * size
    c = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sy = np.cos(angle) * (ys - c) - np.sin(angle) * (xs - c) + c + shift_y
    sx = np.sin(angle) * (ys - c) + np.cos(angle) * (xs - c) + c + shift_x
    img = map_coordinates(img, [sy, sx], order=1, mode="nearest")
    img = gaussian_filter(img, rng.uniform(0.6, 1.4))
    img = np.clip(img, 0, None) ** rng.uniform(0.8, 1.25) * rng.uniform(0.8, 1.15) + j(0.03)
    img += rng.normal(0, rng.uniform(0.01, 0.03), img.shape)
    img += gaussian_filter(rng.normal(0, 0.02, img.shape), 4)  # low-frequency detector nonuniformity
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_dataset(root: Path, per_class: int, seed: int) -> None:
    """Writes `per_class` phantoms per class in the database's layout."""
    rng = np.random.default_rng(seed)
    for cls in CLASSES:
        (root / cls / "images").mkdir(parents=True, exist_ok=True)
    for i in range(1, per_class + 1):
        for cls in CLASSES:
            Image.fromarray(chest(cls, rng)).save(root / cls / "images" / f"{cls}-{i}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--per-class", type=int, required=True)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    write_dataset(a.root, a.per_class, a.seed)
    print(f"wrote {a.per_class} phantoms per class under {a.root}")


if __name__ == "__main__":
    main()
