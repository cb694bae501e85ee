"""Adds onnxruntime's outputs to an imported bundle's reference inputs.

`bedside model import ... --reference DIR --out BUNDLE` writes BUNDLE/golden.json
with each picture of DIR as bedside's model input (its chain and
quantization applied: int8). This script runs the model you imported from,
as onnxruntime runs it, on exactly those inputs, and records its outputs;
then `bedside model verify BUNDLE` runs them in tract and reports the
largest difference.

    python models/tools/golden.py BUNDLE SOURCE.int8.onnx [--f32 SOURCE.onnx]
        [--tolerance INT8 [F32]]

(the training venv has onnxruntime: scripts/setup --venv). The int8 input q
is given to the source graph as the float (q - zero_point) * scale, which
its own QuantizeLinear turns back into q exactly; a source that takes three
channels (imported with --gray-from-rgb) gets the gray picture in all three.
"""

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort


def run(path: Path, x: np.ndarray) -> list:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.type == "tensor(int8)":
        raise SystemExit(f"{path}: takes int8 input; give the graph quantize_static wrote (float input)")
    channels = inp.shape[1] if isinstance(inp.shape[1], int) else 1
    if channels == 3 and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return sess.run(None, {inp.name: x})[0].ravel().astype(float).tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("source", type=Path, help="the int8 ONNX file given to bedside model import")
    ap.add_argument("--f32", type=Path, help="the float ONNX file given as --f32")
    ap.add_argument("--tolerance", type=float, nargs="+",
                    help="largest |tract - onnxruntime| accepted: int8 [f32] (default: 2%% / 0.01%% of the outputs' range)")
    a = ap.parse_args()
    manifest = tomllib.loads((a.bundle / "manifest.toml").read_text())
    scale, zp = manifest["input"]["scale"], manifest["input"]["zero_point"]
    shape = manifest["input"]["shape"]
    golden_path = a.bundle / "golden.json"
    golden = json.loads(golden_path.read_text())
    for case in golden["cases"]:
        q = np.array(case["input"], dtype=np.float32).reshape(shape)
        x = ((q - zp) * np.float32(scale)).astype(np.float32)
        case["output"] = run(a.source, x)
        if a.f32:
            case["f32_output"] = run(a.f32, x)
    golden["runtime"] = f"onnxruntime {ort.__version__}"
    if a.tolerance:
        golden["tolerance"] = {"int8": a.tolerance[0]}
        if len(a.tolerance) > 1:
            golden["tolerance"]["f32"] = a.tolerance[1]
    golden_path.write_text(json.dumps(golden) + "\n")
    print(f"{golden_path}: onnxruntime's outputs for {len(golden['cases'])} inputs"
          + (" (int8 and f32)" if a.f32 else " (int8)"))


if __name__ == "__main__":
    sys.exit(main())
