"""tract against onnxruntime on the same bundles and inputs, in one run.

Run through `benches/compare/run`, which first runs the criterion bench
`infer` (tract, one thread). This times onnxruntime (CPU provider, sequential
execution, 1 and 2 intra-op threads) on each bundle's int8 and f32 model with
the same input (the bundle's first golden case; dequantized for f32) and
prints tract's median latency over onnxruntime's.

    python infer.py MODELS_DIR CRITERION_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from compare import median_seconds


def main() -> None:
    models, crit = Path(sys.argv[1]), Path(sys.argv[2])
    print(f"onnxruntime {ort.__version__}; tract from criterion `infer/`, 1 thread")
    print(f"{'bundle/variant':24} {'tract':>9} {'ort 1t':>9} {'ort 2t':>9} {'tract/ort1':>11} {'tract/ort2':>11}")
    for bundle in ("xray-demo", "echo-ae-demo"):
        d = models / bundle
        golden = json.loads((d / "golden.json").read_text())
        x8 = np.array(golden["cases"][0]["input"], np.int8)
        manifest = (d / "manifest.toml").read_text()
        scale = float(manifest.split("\nscale = ")[1].split("\n")[0])
        zp = int(manifest.split("\nzero_point = ")[1].split("\n")[0])
        for variant, file in (("int8", "model.onnx"), ("f32", "model_f32.onnx")):
            x = x8 if variant == "int8" else ((x8.astype(np.float32) - zp) * scale).astype(np.float32)
            times = []
            for threads in (1, 2):
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                sess = ort.InferenceSession(str(d / file), so, providers=["CPUExecutionProvider"])
                inp = sess.get_inputs()[0]
                feed = {inp.name: x.reshape(inp.shape)}
                times.append(median_seconds(lambda: sess.run(None, feed)))
            est = crit / "infer" / f"{bundle}_{variant}" / "new" / "estimates.json"
            tract = json.loads(est.read_text())["median"]["point_estimate"] / 1e9
            print(f"{bundle + '/' + variant:24} {tract * 1e3:8.3f}ms {times[0] * 1e3:8.3f}ms {times[1] * 1e3:8.3f}ms "
                  f"{tract / times[0]:11.2f} {tract / times[1]:11.2f}")


if __name__ == "__main__":
    main()
