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


def active_area(img: np.ndarray) -> tuple[int, int, int, int]:
    """`crop=auto`: the port of src/preprocess/crop.rs (x, y, width, height).

    8x8 blocks with an eighth of their pixels above 6 are content; the largest
    4-connected group of them (the first in raster order on ties) is the image;
    the rectangle is tightened to its lit pixels. No content: the whole frame.
    """
    from scipy.ndimage import label

    h, w = img.shape
    gh, gw = -(-h // 8), -(-w // 8)
    pad = lambda a: np.pad(a, ((0, gh * 8 - h), (0, gw * 8 - w)))  # noqa: E731
    lit = pad(img > 6).reshape(gh, 8, gw, 8).sum(axis=(1, 3))
    area = pad(np.ones_like(img, bool)).reshape(gh, 8, gw, 8).sum(axis=(1, 3))
    on = (lit * 8 >= area) & (lit > 0)
    labels, n = label(on)
    if n == 0:
        return 0, 0, w, h
    best = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    block_of = np.kron(labels == best, np.ones((8, 8), bool))[:h, :w]
    ys, xs = np.nonzero((img > 6) & block_of)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def crop_auto(img: np.ndarray) -> np.ndarray:
    x, y, w, h = active_area(img)
    return img[y:y + h, x:x + w]


def window(px: np.ndarray, center: float, width: float, monochrome1: bool) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2) to 8 bits, rounded (the runtime
    uses a fixed-point form within one level of it: src/preprocess/convert.rs)."""
    px = px.astype(np.float64)
    y = np.clip(((px - (center - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
    y = np.where(px <= center - 0.5 - (width - 1) / 2, 0, y)
    y = np.round(y).astype(np.uint8)
    return 255 - y if monochrome1 else y


def resize_area_cv(img: np.ndarray, side: int) -> np.ndarray:
    """OpenCV INTER_AREA, which the runtime's resize matches to 99.5% of pixels
    (tests/integration/opencv_fidelity.rs)."""
    import cv2

    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def clahe(img: np.ndarray, clip: float, grid: int) -> np.ndarray:
    """OpenCV's CLAHE, which the runtime's matches to 99.7% of pixels."""
    import cv2

    return cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid)).apply(img)
