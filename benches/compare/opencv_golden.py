"""Golden outputs of OpenCV's equalizeHist, CLAHE and resize (INTER_AREA) on real
frames, for tests/integration/opencv_fidelity.rs.

Inputs are the 8-bit gray display copies bedside makes of the demo's real
images (write them with `bedside preprocess FILE --out X.png --chain gamma=1`):
the chest radiograph (VOI window, MONOCHROME1) and the first echo frame.

Usage: python opencv_golden.py OUT_DIR CHEST_GRAY.png ECHO_GRAY.png
"""

import sys
from pathlib import Path

import cv2

OPS = {
    "equalize": lambda g: cv2.equalizeHist(g),
    "clahe_2.0_8x8": lambda g: cv2.createCLAHE(2.0, (8, 8)).apply(g),
    "clahe_3.0_4x6": lambda g: cv2.createCLAHE(3.0, (4, 6)).apply(g),
    "resize_area_224x224": lambda g: cv2.resize(g, (224, 224), interpolation=cv2.INTER_AREA),
    "resize_area_97x61": lambda g: cv2.resize(g, (97, 61), interpolation=cv2.INTER_AREA),
}


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, path in (("chest", sys.argv[2]), ("echo", sys.argv[3])):
        g = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(out / f"{name}_input.png"), g)
        for op, f in OPS.items():
            cv2.imwrite(str(out / f"{name}_{op}.png"), f(g))
    (out / "VERSION").write_text(f"opencv-python-headless {cv2.__version__}\n")


if __name__ == "__main__":
    main()
