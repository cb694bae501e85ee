"""The QDQ fixtures of tests/integration/qdq.rs: each demonstration bundle's
float graph quantized twice by onnxruntime from the same calibration, once
as QOperator and once as QDQ (S8S8, per-tensor, the same operators), both
taking int8 input as bedside feeds it. Same calibration, same scales: after
bedside's QDQ rewrite (src/infer/qdq.rs) the two must give the same bytes.

    python tests/qdq/make.py        (the training venv: scripts/setup --venv)
"""

import sys
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantFormat

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models" / "train"))
import export  # noqa: E402

OUT = Path(__file__).resolve().parent


def main():
    for bundle, stem in [("xray-demo", "xray"), ("echo-ae-demo", "echo")]:
        f32 = ROOT / "models" / bundle / "model_f32.onnx"
        import onnx

        dims = [d.dim_value for d in onnx.load(str(f32)).graph.input[0].type.tensor_type.shape.dim]
        side = dims[-1]
        rng = np.random.default_rng(7)
        calib = rng.random((16, side, side)).astype(np.float32)
        for fmt, tag in [(QuantFormat.QOperator, "qop"), (QuantFormat.QDQ, "qdq")]:
            out = OUT / f"{stem}.{tag}.onnx"
            scale, zp, ops = export.quantize_int8_input(f32, out, calib, quant_format=fmt)
            print(f"{out.relative_to(ROOT)}: input scale {scale} zero point {zp}, ops {ops}")


if __name__ == "__main__":
    main()
