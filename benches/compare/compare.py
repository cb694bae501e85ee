"""Times OpenCV doing bedside's full preprocessing chains on the same inputs,
single-threaded, and prints bedside's time / OpenCV's time.

Run through `benches/compare/run`, which first runs the criterion bench
(`cargo bench --bench preprocess -- full/`) with BEDSIDE_BENCH_DUMP set, so the
bench writes its exact inputs; this script then times OpenCV on them and reads
criterion's median estimates.

The OpenCV chain is the one a careful OpenCV user would write for the same
result: cvtColor(YUV2GRAY_YUYV) or, for the 16-bit radiograph, convertScaleAbs
(the VOI window as scale and offset) then bitwise_not (MONOCHROME1); resize
INTER_AREA to 224x224; CLAHE 2.0 8x8 (object made once, as bedside does); LUT
to the model's int8 input. convertScaleAbs takes the absolute value, so it
equals the window only when the window's lower edge is at or below the
smallest sample; the script checks that and says so when it is not.

Usage: python compare.py DUMP_DIR CRITERION_DIR
"""

import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def median_seconds(f, min_sample_s=0.05, samples=30):
    """Median time of one call: like criterion, many calls per sample."""
    for _ in range(10):
        f()
    t0 = time.perf_counter()
    f()
    one = max(time.perf_counter() - t0, 1e-7)
    per_sample = max(1, int(min_sample_s / one))
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(per_sample):
            f()
        times.append((time.perf_counter() - t0) / per_sample)
    return statistics.median(times)


def quant_table():
    # bedside's demo quantization: scale 1/255, zero point -128, pixel scale 1/255.
    q = np.clip(np.round(np.arange(256) * (1 / 255) / (1 / 255)) - 128, -128, 127)
    return q.astype(np.int8).view(np.uint8)


def main() -> None:
    dump, crit = Path(sys.argv[1]), Path(sys.argv[2])
    cv2.setNumThreads(1)
    meta = json.loads((dump / "inputs.json").read_text())
    clahe = cv2.createCLAHE(2.0, (8, 8))
    lut = quant_table()

    def tail(gray):
        small = cv2.resize(gray, (224, 224), interpolation=cv2.INTER_AREA)
        return cv2.LUT(clahe.apply(small), lut)

    chains = {}
    y = meta["yuyv"]
    yuyv = np.fromfile(dump / y["file"], np.uint8).reshape(y["height"], y["width"], 2)
    chains["yuyv640x480_to_224_clahe"] = lambda: tail(cv2.cvtColor(yuyv, cv2.COLOR_YUV2GRAY_YUYV))
    if "chest" in meta:
        c = meta["chest"]
        chest = np.fromfile(dump / c["file"], "<u2").reshape(c["height"], c["width"])
        center, width = c["center"], c["window"]
        lower = center - 0.5 - (width - 1) / 2
        if lower > chest.min():
            print(f"note: window lower edge {lower} is above the smallest sample {chest.min()}: "
                  "convertScaleAbs folds those samples, so OpenCV's result differs there (timing unaffected)")
        alpha = 255 / (width - 1)
        beta = 255 * (0.5 - (center - 0.5) / (width - 1))
        invert = c["invert"]

        def chest_chain():
            g = cv2.convertScaleAbs(chest, alpha=alpha, beta=beta)
            if invert:
                g = cv2.bitwise_not(g)
            return tail(g)

        chains[f"chest_y16_{c['width']}x{c['height']}_to_224_clahe"] = chest_chain
    else:
        print("note: the radiograph was not dumped (run scripts/fetch-data); its chain is skipped")

    print(f"\nOpenCV {cv2.__version__}, 1 thread; chain {meta['chain']}")
    print(f"{'chain':<40} {'bedside':>10} {'OpenCV':>10} {'bedside/OpenCV':>15}")
    for name, f in chains.items():
        est = crit / "full" / name / "new" / "estimates.json"
        ours = json.loads(est.read_text())["median"]["point_estimate"] / 1e9
        theirs = median_seconds(f)
        print(f"{name:<40} {ours * 1e3:>8.3f}ms {theirs * 1e3:>8.3f}ms {ours / theirs:>15.2f}")


if __name__ == "__main__":
    main()
