"""Python mirror of the runtime's preprocessing steps used by the demo bundles.

The runtime (src/preprocess) is the reference; these follow the same integer
formulas so that training inputs look like what the board will feed the model:
BT.601 gray with OpenCV's 14-bit weights, area-average downscaling, and
histogram equalization with OpenCV's equalizeHist mapping.
"""

import numpy as np


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(np.uint8)


def resize_area(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area averaging with exact fractional pixel weights (float here; fixed point at run time)."""
    src = img.astype(np.float64)
    sh, sw = src.shape

    def weights(n_src: int, n_dst: int) -> np.ndarray:
        m = np.zeros((n_dst, n_src))
        scale = n_src / n_dst
        for d in range(n_dst):
            lo, hi = d * scale, (d + 1) * scale
            for s in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_src)):
                m[d, s] = max(0.0, min(hi, s + 1) - max(lo, s))
            m[d] /= m[d].sum()
        return m

    out = weights(sh, h) @ src @ weights(sw, w).T
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def equalize(img: np.ndarray) -> np.ndarray:
    hist = np.bincount(img.ravel(), minlength=256)
    total = img.size
    first = int(np.flatnonzero(hist)[0])
    if hist[first] == total:
        return np.full_like(img, first)
    scale = 255.0 / (total - hist[first])
    cdf = np.cumsum(hist) - hist[first]
    lut = np.clip(np.round(cdf * scale), 0, 255).astype(np.uint8)
    lut[:first] = 0
    return lut[img]
