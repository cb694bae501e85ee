"""tract against onnxruntime on the same bundles and inputs, in one run.

Run through `benches/compare/run`, which first runs the criterion bench
`infer` (tract at 1 and 2 threads). This times onnxruntime (CPU provider,
sequential execution, 1 and 2 intra-op threads) on each bundle's int8 and f32
model with the same input (the bundle's first golden case; dequantized for
f32) and prints tract's median latency over onnxruntime's at the same thread
count, and tract int8 over tract f32.

    python infer.py MODELS_DIR CRITERION_DIR [BENCH_NETS_DIR]

With BENCH_NETS_DIR (models/bench/run), onnxruntime's int8 figure for the
bundles is its fastest export of the bundle's float graph (U8S8/S8S8 x
QOperator/QDQ) at each thread count, and the benchmark networks follow: tract
int8 and f32 against onnxruntime f32 and its fastest int8 export.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from compare import median_seconds


def main() -> None:
    models, crit = Path(sys.argv[1]), Path(sys.argv[2])
    nets_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    print(f"onnxruntime {ort.__version__}; tract from criterion `infer/`")
    print("onnxruntime int8: the fastest of its exports (U8S8/S8S8 x QOperator/QDQ, models/bench/run)"
          " at that thread count when BENCH_NETS_DIR is given, else the bundle's own S8S8 QOperator graph")
    print(f"{'bundle/variant':22} {'tract 1t':>10} {'ort 1t':>10} {'ratio 1t':>9} {'tract 2t':>10} {'ort 2t':>10} "
          f"{'ratio 2t':>9}  ort int8 best of (1t, 2t)")
    tract_ms = {}
    for bundle in ("xray-demo", "echo-ae-demo"):
        d = models / bundle
        golden = json.loads((d / "golden.json").read_text())
        x8 = np.array(golden["cases"][0]["input"], np.int8)
        manifest = (d / "manifest.toml").read_text()
        scale = float(manifest.split("\nscale = ")[1].split("\n")[0])
        zp = int(manifest.split("\nzero_point = ")[1].split("\n")[0])
        xf = ((x8.astype(np.float32) - zp) * scale).astype(np.float32)
        for variant, file in (("int8", "model.onnx"), ("f32", "model_f32.onnx")):
            times, bests = [], []
            for threads in (1, 2):
                if variant == "int8" and nets_dir is not None:
                    name, t, _ = ort_best(nets_dir / bundle / "ort", xf, threads)
                else:
                    name = "bundle's own" if variant == "int8" else ""
                    x = x8 if variant == "int8" else xf
                    sess = session(d / file, threads)
                    inp = sess.get_inputs()[0]
                    feed = {inp.name: x.reshape(inp.shape)}
                    t = median_seconds(lambda: sess.run(None, feed))
                times.append(t)
                bests.append(name)
            tract = [
                json.loads((crit / "infer" / f"{bundle}_{variant}{s}" / "new" / "estimates.json").read_text())[
                    "median"]["point_estimate"] / 1e9
                for s in ("", "-t2")
            ]
            tract_ms[bundle, variant] = tract
            best = f"  {bests[0]}, {bests[1]}" if variant == "int8" else ""
            print(f"{bundle + '/' + variant:22} {tract[0] * 1e3:8.3f}ms {times[0] * 1e3:8.3f}ms {tract[0] / times[0]:9.2f} "
                  f"{tract[1] * 1e3:8.3f}ms {times[1] * 1e3:8.3f}ms {tract[1] / times[1]:9.2f}{best}")
    print("tract int8 / tract f32 (below 1: int8 is faster)")
    for bundle in ("xray-demo", "echo-ae-demo"):
        i8, f = tract_ms[bundle, "int8"], tract_ms[bundle, "f32"]
        print(f"  {bundle:20} 1 thread {i8[0] / f[0]:.2f}   2 threads {i8[1] / f[1]:.2f}")
    if nets_dir is not None:
        nets(nets_dir, crit)


def ort_best(exports: Path, x, threads=1):
    """onnxruntime's fastest int8 export in `exports` on float input `x`:
    (its name, its median seconds, every export's median seconds)."""
    times = {}
    for p in sorted(exports.glob("*.onnx")):
        s = session(p, threads)
        times[p.stem] = median_seconds(lambda s=s: s.run(None, {s.get_inputs()[0].name: x.reshape(s.get_inputs()[0].shape)}))
    best = min(times, key=times.get)
    return best, times[best], times


def session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def nets(root: Path, crit: Path) -> None:
    """The benchmark networks (models/bench/run), one thread: onnxruntime's
    f32 and each of its int8 exports (ort/: U8S8 and S8S8, QOperator and
    QDQ), the fastest int8 one reported as its best, against tract."""
    print("\nbenchmark networks, 1 thread (tract from criterion `infer/net-*`; onnxruntime int8: its fastest export)")
    print(f"{'network':12} {'tract i8':>10} {'tract f32':>10} {'ort i8':>10} {'ort f32':>10} "
          f"{'t.i8/ort.i8':>11} {'t.i8/t.f32':>10} {'ort i8 best of':>16}")
    for net in ("mobilenetv2", "resnet18"):
        d = root / net
        manifest = (d / "manifest.toml").read_text()
        scale = float(manifest.split("\nscale = ")[1].split("\n")[0])
        zp = int(manifest.split("\nzero_point = ")[1].split("\n")[0])
        x8 = np.fromfile(d / "input.i8", dtype=np.int8).reshape(1, 1, 224, 224)
        xf = ((x8.astype(np.float32) - zp) * scale).astype(np.float32)
        ort_f32 = median_seconds(lambda s=session(d / "model_f32.onnx"): s.run(None, {s.get_inputs()[0].name: xf}))
        best, _, peers = ort_best(d / "ort", xf)
        t = {v: json.loads((crit / "infer" / f"net-{net}_{v}" / "new" / "estimates.json").read_text())[
            "median"]["point_estimate"] / 1e9 for v in ("int8", "f32")}
        others = ", ".join(f"{k} {v * 1e3:.1f}ms" for k, v in sorted(peers.items()))
        print(f"{net:12} {t['int8'] * 1e3:8.2f}ms {t['f32'] * 1e3:8.2f}ms {peers[best] * 1e3:8.2f}ms "
              f"{ort_f32 * 1e3:8.2f}ms {t['int8'] / peers[best]:11.2f} {t['int8'] / t['f32']:10.2f} {best:>16}")
        print(f"{'':12} onnxruntime int8 exports: {others}")


if __name__ == "__main__":
    main()
