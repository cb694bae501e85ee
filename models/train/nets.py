"""The two demonstration architectures, their JAX training, and their ONNX export.

Chosen for tract's int8 path (FINDINGS.md section 2): plain 3x3 convolutions
(no depthwise, which tract runs as im2col + GEMM), strides instead of pooling,
ReLU, and for upsampling a pixel shuffle written as Reshape/Transpose (int8
shape ops) rather than ConvTranspose (which onnxruntime never quantizes).
Channel counts are multiples of 8 (tract's 8x8 int8 matmul tiles) except the
single gray input and the 4-channel layer that the last shuffle turns into one.

A network is a list of layers:
  ("conv", cin, cout, stride)   3x3, padding 1, with bias
  ("relu",)
  ("shuffle", r)                [C*r*r, H, W] -> [C, H*r, W*r] (ONNX DepthToSpace CRD)
  ("flatten",)
  ("dense", nin, nout)          MatMul + bias
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# 128x128 gray -> 4 logits. 30.3 M MACs, 96 k parameters.
XRAY = [
    ("conv", 1, 16, 2), ("relu",),
    ("conv", 16, 32, 2), ("relu",),
    ("conv", 32, 32, 1), ("relu",),
    ("conv", 32, 64, 2), ("relu",),
    ("conv", 64, 64, 1), ("relu",),
    ("conv", 64, 32, 2), ("relu",),
    ("flatten",),
    ("dense", 32 * 8 * 8, 4),
]

# 64x64 gray -> 64x64 reconstruction through an 8x8x8 bottleneck. 6.3 M MACs, 47 k parameters.
ECHO = [
    ("conv", 1, 16, 2), ("relu",),
    ("conv", 16, 32, 2), ("relu",),
    ("conv", 32, 32, 2), ("relu",),
    ("conv", 32, 8, 1), ("relu",),
    ("conv", 8, 32, 1), ("relu",),
    ("conv", 32, 64, 1), ("relu",),
    ("shuffle", 2),
    ("conv", 16, 64, 1), ("relu",),
    ("shuffle", 2),
    ("conv", 16, 4, 1),
    ("shuffle", 2),
]


def init(spec, seed: int):
    """He-normal weights, zero biases."""
    rng = np.random.default_rng(seed)
    params = []
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, _ = layer
            w = rng.normal(0, np.sqrt(2.0 / (cin * 9)), (cout, cin, 3, 3))
            params.append((jnp.asarray(w, jnp.float32), jnp.zeros(cout, jnp.float32)))
        elif layer[0] == "dense":
            _, nin, nout = layer
            w = rng.normal(0, np.sqrt(2.0 / nin), (nin, nout))
            params.append((jnp.asarray(w, jnp.float32), jnp.zeros(nout, jnp.float32)))
    return params


def _shuffle(x, r):
    n, c, h, w = x.shape
    x = x.reshape(n, c // (r * r), r, r, h, w)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def forward(spec, params, x):
    """x: [N, 1, H, W] float32 in [0, 1]."""
    it = iter(params)
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            w, b = next(it)
            s = layer[3]
            x = jax.lax.conv_general_dilated(
                x, w, (s, s), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
            ) + b[None, :, None, None]
        elif kind == "relu":
            x = jax.nn.relu(x)
        elif kind == "shuffle":
            x = _shuffle(x, layer[1])
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "dense":
            w, b = next(it)
            x = x @ w + b
    return x


def macs_and_params(spec, side: int):
    """Multiply-accumulates of one forward pass and the parameter count."""
    macs = params = 0
    h = w = side
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, s = layer
            h, w = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
            macs += h * w * cout * cin * 9
            params += cout * cin * 9 + cout
        elif layer[0] == "shuffle":
            h, w = h * layer[1], w * layer[1]
        elif layer[0] == "dense":
            macs += layer[1] * layer[2]
            params += layer[1] * layer[2] + layer[2]
    return macs, params


def train(spec, params, loss_fn, batches, steps: int, lr: float, log_every: int = 100, wd: float = 0.0):
    """AdamW on `loss_fn(spec, params, x, y)` over `batches` (an endless iterator of (x, y)),
    with decoupled weight decay `wd` and a cosine learning-rate decay."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    @jax.jit
    def step(params, m, v, t, x, y):
        loss, g = jax.value_and_grad(lambda p: loss_fn(spec, p, x, y))(params)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        # Linear warm-up over the first 5% of steps (without batch norm, a
        # full-rate start can leave every ReLU dead), then cosine decay.
        warm = max(1, steps // 20)
        rate = lr * jnp.minimum(1.0, (t + 1) / warm) * 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        params = jax.tree_util.tree_map(
            lambda p, a, c: p - rate * ((a / (1 - b1 ** (t + 1))) / (jnp.sqrt(c / (1 - b2 ** (t + 1))) + eps)
                                        + wd * p),
            params, m, v,
        )
        return params, m, v, loss

    for t in range(steps):
        x, y = next(batches)
        params, m, v, loss = step(params, m, v, t, x, y)
        if log_every and (t % log_every == 0 or t == steps - 1):
            print(f"  step {t + 1}/{steps} loss {float(loss):.5f}", flush=True)
    return params


def to_onnx(spec, params, name: str, side: int, out_name: str) -> onnx.ModelProto:
    """The float ONNX graph of `spec` with batch 1: image [1, 1, side, side] -> out_name."""
    nodes, inits = [], []
    cur, it, i = "image", iter(params), 0
    c, h, w = 1, side, side

    def fresh(prefix):
        nonlocal i
        i += 1
        return f"{prefix}{i}"

    for layer in spec:
        kind = layer[0]
        out = fresh(kind)
        if kind == "conv":
            wt, b = (np.asarray(a, np.float32) for a in next(it))
            _, cin, cout, s = layer
            inits += [numpy_helper.from_array(wt, out + "_w"), numpy_helper.from_array(b, out + "_b")]
            nodes.append(helper.make_node("Conv", [cur, out + "_w", out + "_b"], [out], kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[s, s]))
            c, h, w = cout, (h - 1) // s + 1, (w - 1) // s + 1
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif kind == "shuffle":
            r = layer[1]
            inits.append(numpy_helper.from_array(np.array([1, c // (r * r), r, r, h, w], np.int64), out + "_s6"))
            inits.append(numpy_helper.from_array(np.array([1, c // (r * r), h * r, w * r], np.int64), out + "_s4"))
            nodes.append(helper.make_node("Reshape", [cur, out + "_s6"], [out + "_6"]))
            nodes.append(helper.make_node("Transpose", [out + "_6"], [out + "_t"], perm=[0, 1, 4, 2, 5, 3]))
            nodes.append(helper.make_node("Reshape", [out + "_t", out + "_s4"], [out]))
            c, h, w = c // (r * r), h * r, w * r
        elif kind == "flatten":
            inits.append(numpy_helper.from_array(np.array([1, c * h * w], np.int64), out + "_s"))
            nodes.append(helper.make_node("Reshape", [cur, out + "_s"], [out]))
        elif kind == "dense":
            wt, b = (np.asarray(a, np.float32) for a in next(it))
            inits += [numpy_helper.from_array(wt, out + "_w"), numpy_helper.from_array(b, out + "_b")]
            nodes.append(helper.make_node("MatMul", [cur, out + "_w"], [out + "_mm"]))
            nodes.append(helper.make_node("Add", [out + "_mm", out + "_b"], [out]))
        cur = out
    nodes[-1].output[0] = out_name
    out_shape = [1, layer[2]] if spec[-1][0] == "dense" else [1, c, h, w]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, side, side])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
