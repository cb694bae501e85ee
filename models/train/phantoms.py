"""Procedural chest-radiograph phantoms in the COVID-19 Radiography Database classes.

A deliberately simple generator for the demonstration bundle: thorax, lungs,
ribs, clavicles, spine, heart, diaphragm, exposure and detector noise, plus one
class-specific finding. Models trained on it are demonstration models only.
"""

import numpy as np

CLASSES = ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _blur(a: np.ndarray, k: int) -> np.ndarray:
    kern = np.ones(k) / k
    a = np.apply_along_axis(lambda r: np.convolve(r, kern, mode="same"), 0, a)
    return np.apply_along_axis(lambda r: np.convolve(r, kern, mode="same"), 1, a)


def chest(cls: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    j = lambda s: rng.normal(0.0, s)  # noqa: E731
    img = np.full((size, size), 0.12 + j(0.03))
    img[_ellipse(yy, xx, 0.58 + j(0.02), 0.5 + j(0.01), 0.52 + j(0.03), 0.44 + j(0.03))] = 0.62 + j(0.04)
    lungs = np.zeros_like(img, dtype=bool)
    for side in (-1, 1):
        cx = 0.5 + side * (0.19 + j(0.015))
        lungs |= _ellipse(yy, xx, 0.5 + j(0.02), cx, 0.3 + j(0.02), 0.13 + j(0.01))
    img[lungs] = 0.28 + j(0.03) + 0.08 * (yy[lungs] - 0.5)
    for k in range(7):  # ribs: bright arcs across the lung fields
        y0 = 0.26 + k * (0.075 + j(0.003))
        arc = np.abs(yy - (y0 + 0.08 * ((xx - 0.5) ** 2) * 4)) < 0.012
        img[arc & lungs] += 0.1
    img[np.abs(xx - 0.5) < 0.035 + j(0.004)] += 0.2  # spine
    for side in (-1, 1):  # clavicles
        cl = np.abs(yy - (0.2 + side * (xx - 0.5) * -0.25)) < 0.015
        img[cl & (np.abs(xx - 0.5) < 0.3)] += 0.25
    img[_ellipse(yy, xx, 0.63 + j(0.02), 0.56 + j(0.02), 0.14 + j(0.015), 0.15 + j(0.015))] = 0.7 + j(0.03)
    img[yy > 0.8 + j(0.02) + 0.05 * np.cos((xx - 0.5) * 6)] = 0.75 + j(0.03)  # diaphragm
    finding = np.zeros_like(img)
    if cls == "COVID":  # bilateral peripheral ground glass, lower zones
        for side in (-1, 1):
            cy, cx = 0.63 + j(0.03), 0.5 + side * (0.27 + j(0.02))
            finding += 0.16 * np.exp(-(((yy - cy) / 0.09) ** 2 + ((xx - cx) / 0.06) ** 2))
    elif cls == "Viral Pneumonia":  # diffuse interstitial pattern
        finding = 0.22 * np.clip(_blur(rng.normal(0, 1, img.shape), 3), 0, None)
    elif cls == "Lung_Opacity":  # focal consolidation
        side = rng.choice([-1, 1])
        cy, cx, r = 0.35 + rng.uniform(0, 0.3), 0.5 + side * (0.19 + j(0.03)), rng.uniform(0.04, 0.08)
        finding += 0.35 * np.exp(-(((yy - cy) / r) ** 2 + ((xx - cx) / r) ** 2))
    img = img + finding * lungs
    img = _blur(img, 3)
    img = img ** rng.uniform(0.8, 1.25) * rng.uniform(0.85, 1.1)  # exposure
    img += rng.normal(0, 0.02, img.shape)  # detector noise
    return np.clip(img * 255, 0, 255).astype(np.uint8)
