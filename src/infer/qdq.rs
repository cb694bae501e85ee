//! QDQ models onto int8 kernels: a rewrite of the ONNX graph before tract
//! reads it.
//!
//! onnxruntime's default quantized format (and what quantization-aware
//! training exports) is QDQ: float operators between `DequantizeLinear` and
//! `QuantizeLinear`. tract 0.23.9 runs such a graph as written, with float
//! kernels (it folds only element-wise chains between a dequantize and a
//! quantize, into a lookup table). This module rewrites the protobuf so
//! those operators become the integer operators tract runs on its int8
//! kernels, the same ones a QOperator export holds:
//!
//! - `DQ(x) -> Conv(DQ(w), bias) -> [Relu|Clip] -> Q` becomes `QLinearConv`.
//!   The activation goes when the output's saturation already does its work
//!   (Relu with the zero point at the type's minimum; Clip wider than the
//!   output's range); otherwise it stays, between a `DequantizeLinear` and a
//!   `QuantizeLinear` of the same parameters, which tract folds into a
//!   lookup table: exact either way, since quantizing is monotone and maps
//!   0 to the zero point.
//! - `DQ(a) -> MatMul(DQ(b)) -> Q`, per-tensor, becomes `QLinearMatMul`.
//! - Any other `DQ(a) -> MatMul(DQ(b))`, and `Gemm`, become `MatMulInteger`
//!   and a float epilogue (scales, bias): ONNX has no standard quantized
//!   Gemm (the QOperator export uses com.microsoft's `QGemm`, which tract
//!   lacks), and the product is where the time goes.
//!
//! The bias of a convolution is the int32 tensor of its `DequantizeLinear`
//! when its scale is the input's times the weights' (what onnxruntime
//! writes), otherwise the float bias quantized with that scale, as a
//! QOperator export does. What is not recognised is left as it is.
//! `BEDSIDE_QDQ_FOLD=0` turns the rewrite off, for comparison.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

pub(super) const FLOAT: i32 = 1;
pub(super) const UINT8: i32 = 2;
pub(super) const INT8: i32 = 3;
pub(super) const INT32: i32 = 6;

/// Whether [`fold`] runs at load (default yes; `BEDSIDE_QDQ_FOLD=0` leaves
/// tract's own handling of QDQ, float kernels, for comparison).
pub fn enabled() -> bool {
    std::env::var_os("BEDSIDE_QDQ_FOLD").is_none_or(|v| v != "0")
}

/// What [`fold`] rewrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Convolutions now `QLinearConv`.
    pub conv: usize,
    /// Matrix products (`MatMul`, `Gemm`) now `MatMulInteger`.
    pub matmul: usize,
    /// Relu/Clip made redundant by the output's saturation, removed.
    pub activations: usize,
}

impl Folded {
    pub fn any(&self) -> bool {
        self.conv + self.matmul > 0
    }
}

/// A 4-byte tensor's values, from its typed field or its raw
/// little-endian bytes, when it is of type `dt`.
fn words<T: Clone>(
    t: &pb::TensorProto,
    dt: i32,
    typed: &[T],
    from_le: fn([u8; 4]) -> T,
) -> Option<Vec<T>> {
    if t.data_type != dt {
        return None;
    }
    if !typed.is_empty() {
        return Some(typed.to_vec());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return None;
    }
    Some(
        t.raw_data
            .chunks_exact(4)
            .map(|b| from_le([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

pub(super) fn floats(t: &pb::TensorProto) -> Option<Vec<f32>> {
    words(t, FLOAT, &t.float_data, f32::from_le_bytes)
}

pub(super) fn int32s(t: &pb::TensorProto) -> Option<Vec<i32>> {
    words(t, INT32, &t.int32_data, i32::from_le_bytes)
}

/// An 8-bit tensor's values widened to i32 (int8 or uint8).
pub(super) fn bytes8(t: &pb::TensorProto) -> Option<Vec<i32>> {
    let widen = |b: u8| match t.data_type {
        INT8 => i32::from(b as i8),
        _ => i32::from(b),
    };
    if t.data_type != INT8 && t.data_type != UINT8 {
        return None;
    }
    if !t.int32_data.is_empty() {
        return Some(t.int32_data.clone());
    }
    Some(t.raw_data.iter().map(|&b| widen(b)).collect())
}

pub(super) fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_int(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

pub(super) fn attr_float(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

pub(super) fn standard(n: &pb::NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

/// A `DequantizeLinear` node's parameters, all initializers: the quantized
/// tensor (name and type), the scales, the zero points and the names of the
/// scale and zero-point initializers.
struct Dequant {
    input: String,
    input_is_init: bool,
    dt: i32,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    scale_name: String,
    zero_point_name: String,
    axis: i64,
}

/// The graph, indexed.
struct Index<'a> {
    nodes: &'a [pb::NodeProto],
    inits: HashMap<&'a str, &'a pb::TensorProto>,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    outputs: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(g: &'a pb::GraphProto) -> Index<'a> {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for x in n.input.iter().filter(|x| !x.is_empty()) {
                consumers.entry(x.as_str()).or_default().push(i);
            }
        }
        Index {
            nodes: &g.node,
            inits: g.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
            producer,
            consumers,
            outputs: g.output.iter().map(|v| v.name.as_str()).collect(),
        }
    }

    fn producer(&self, name: &str) -> Option<&'a pb::NodeProto> {
        self.producer.get(name).map(|&i| &self.nodes[i])
    }

    /// The one node reading `name`, when exactly one does and it is not a
    /// graph output.
    fn sole_consumer(&self, name: &str) -> Option<usize> {
        match self.consumers.get(name).map(Vec::as_slice) {
            Some([one]) if !self.outputs.contains(name) => Some(*one),
            _ => None,
        }
    }

    /// `name` as produced by a `DequantizeLinear` whose scale and zero point
    /// are initializers.
    fn dequant(&self, name: &str) -> Option<Dequant> {
        let n = self.producer(name)?;
        if n.op_type != "DequantizeLinear" || !standard(n) {
            return None;
        }
        let scale_name = n.input.get(1)?.clone();
        let scales = floats(self.inits.get(scale_name.as_str())?)?;
        let zero_point_name = n.input.get(2).cloned().unwrap_or_default();
        if zero_point_name.is_empty() {
            return None;
        }
        let zp = self.inits.get(zero_point_name.as_str())?;
        let zero_points = match zp.data_type {
            INT32 => int32s(zp)?,
            _ => bytes8(zp)?,
        };
        let input = n.input.first()?.clone();
        let input_init = self.inits.get(input.as_str());
        if scales.is_empty() || zero_points.len() != scales.len() {
            return None;
        }
        if input_init.is_some_and(|t| t.data_type != zp.data_type) {
            return None;
        }
        Some(Dequant {
            input_is_init: input_init.is_some(),
            input,
            dt: zp.data_type,
            scales,
            zero_points,
            scale_name,
            zero_point_name,
            axis: attr_int(n, "axis", 1),
        })
    }

    /// The one node reading `name`, as its first input.
    fn sole_reader(&self, name: &str) -> Option<usize> {
        self.sole_consumer(name)
            .filter(|&i| self.nodes[i].input.first().is_some_and(|x| x == name))
    }

    /// A scalar `QuantizeLinear` at node `i`: (scale, zero point, type,
    /// scale name, zero-point name).
    fn quant(&self, i: usize) -> Option<(f32, i32, i32, String, String)> {
        let n = &self.nodes[i];
        if n.op_type != "QuantizeLinear" || !standard(n) {
            return None;
        }
        let scale_name = n.input.get(1)?.clone();
        let zp_name = n.input.get(2)?.clone();
        let scale = floats(self.inits.get(scale_name.as_str())?)?;
        let zp = self.inits.get(zp_name.as_str())?;
        let zps = bytes8(zp)?;
        match (scale.as_slice(), zps.as_slice()) {
            ([s], [z]) => Some((*s, *z, zp.data_type, scale_name, zp_name)),
            _ => None,
        }
    }
}

pub(super) fn node(op: &str, name: String, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub(super) fn tensor_f32(name: String, dims: Vec<i64>, v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims,
        data_type: FLOAT,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(super) fn tensor_i32(name: String, dims: Vec<i64>, v: &[i32]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims,
        data_type: INT32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(super) fn tensor_8(name: String, dims: Vec<i64>, dt: i32, v: &[i32]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims,
        data_type: dt,
        raw_data: v.iter().map(|&x| x as u8).collect(),
        ..Default::default()
    }
}

/// One rewrite: the nodes that replace node `at`, the nodes it makes
/// redundant and the initializers it adds.
struct Rewrite {
    at: usize,
    nodes: Vec<pb::NodeProto>,
    remove: Vec<usize>,
    inits: Vec<pb::TensorProto>,
    activation_folded: bool,
}

/// The type's range.
fn range(dt: i32) -> (i32, i32) {
    if dt == UINT8 { (0, 255) } else { (-128, 127) }
}

/// Per-output-channel scales of the weights, `m` of them.
fn per_channel(w: &Dequant, m: usize, axis: i64) -> Option<Vec<f32>> {
    match w.scales.len() {
        1 => Some(vec![w.scales[0]; m]),
        n if n == m && w.axis == axis => Some(w.scales.clone()),
        _ => None,
    }
}

fn conv(ix: &Index, at: usize, fresh: &dyn Fn(&str) -> String) -> Option<Rewrite> {
    let c = &ix.nodes[at];
    let x = ix.dequant(c.input.first()?)?;
    let w = ix.dequant(c.input.get(1)?)?;
    if x.input_is_init || !w.input_is_init || x.scales.len() != 1 {
        return None;
    }
    let wt = ix.inits[w.input.as_str()];
    let m = usize::try_from(*wt.dims.first()?).ok()?;
    // Output channels bounded by the weights actually there (a hostile
    // header must not size an allocation).
    let present = if wt.int32_data.is_empty() {
        wt.raw_data.len()
    } else {
        wt.int32_data.len()
    };
    if m == 0 || m > present {
        return None;
    }
    let w_scales = per_channel(&w, m, 0)?;
    // tract's quantized convolution takes one weight zero point.
    if w.zero_points.iter().any(|&z| z != w.zero_points[0]) {
        return None;
    }
    // The output: Q, or Relu/Clip then Q.
    let y = c.output.first()?;
    let next = ix.sole_reader(y)?;
    let (act, q_at) = match ix.nodes[next].op_type.as_str() {
        "Relu" | "Clip" if standard(&ix.nodes[next]) => {
            (Some(next), ix.sole_reader(ix.nodes[next].output.first()?)?)
        }
        _ => (None, next),
    };
    let (sy, zy, ydt, sy_name, zy_name) = ix.quant(q_at)?;
    let q_out = ix.nodes[q_at].output.first()?.clone();

    let mut inits = Vec::new();
    let mut remove = vec![q_at];
    // Bias: the int32 tensor when its scale is x's times w's, else the
    // float bias quantized with that scale.
    let bias_scale: Vec<f32> = w_scales.iter().map(|s| s * x.scales[0]).collect();
    let bias_name = match c.input.get(2).filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => {
            if let Some(bd) = ix.dequant(b) {
                let same = bd.dt == INT32
                    && bd.input_is_init
                    && bd.zero_points.iter().all(|&z| z == 0)
                    && per_channel(&bd, m, 0).is_some_and(|s| {
                        s.iter()
                            .zip(&bias_scale)
                            .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs())
                    });
                if !same {
                    return None;
                }
                Some(bd.input)
            } else {
                let v = floats(ix.inits.get(b.as_str())?)?;
                if v.len() != m {
                    return None;
                }
                let q: Vec<i32> = v
                    .iter()
                    .zip(&bias_scale)
                    .map(|(v, s)| (v / s).round_ties_even() as i32)
                    .collect();
                let name = fresh("bias_q");
                inits.push(tensor_i32(name.clone(), vec![m as i64], &q));
                Some(name)
            }
        }
    };
    // Per-channel weight scales and zero point as QLinearConv takes them.
    let (w_scale_name, w_zp_name) = if w.scales.len() == 1 {
        (w.scale_name.clone(), w.zero_point_name.clone())
    } else {
        let zp = fresh("w_zero_point");
        inits.push(tensor_8(zp.clone(), vec![], w.dt, &[w.zero_points[0]]));
        (w.scale_name.clone(), zp)
    };

    // The activation: gone when saturation does its work, else kept
    // between a DQ and a Q of the output's parameters (a lookup table in
    // tract).
    let (lo, hi) = range(ydt);
    let act_folded = act.is_some_and(|a| {
        let n = &ix.nodes[a];
        match n.op_type.as_str() {
            "Relu" => zy == lo,
            _ => {
                let bound = |input: usize, attr_name: &str, default: f32| match n
                    .input
                    .get(input)
                    .filter(|s| !s.is_empty())
                {
                    Some(name) => ix
                        .inits
                        .get(name.as_str())
                        .and_then(|t| floats(t))
                        .and_then(|v| v.first().copied()),
                    None => Some(attr_float(n, attr_name, default)),
                };
                let min = bound(1, "min", f32::MIN);
                let max = bound(2, "max", f32::MAX);
                matches!((min, max), (Some(a), Some(b))
                    if a <= sy * (lo - zy) as f32 && b >= sy * (hi - zy) as f32)
            }
        }
    });
    let conv_out = if act.is_some() && !act_folded {
        fresh("conv_q")
    } else {
        q_out.clone()
    };
    let mut inputs = vec![
        x.input.as_str(),
        x.scale_name.as_str(),
        x.zero_point_name.as_str(),
        w.input.as_str(),
        w_scale_name.as_str(),
        w_zp_name.as_str(),
        sy_name.as_str(),
        zy_name.as_str(),
    ];
    if let Some(b) = &bias_name {
        inputs.push(b);
    }
    let mut qconv = node("QLinearConv", c.name.clone(), &inputs, &[&conv_out]);
    qconv.attribute = c.attribute.clone();
    let mut nodes = vec![qconv];
    if let Some(a) = act {
        remove.push(a);
        if !act_folded {
            let f = fresh("act_in");
            let g = fresh("act_out");
            nodes.push(node(
                "DequantizeLinear",
                fresh("act_dq"),
                &[&conv_out, &sy_name, &zy_name],
                &[&f],
            ));
            let mut act_node = ix.nodes[a].clone();
            act_node.input[0] = f;
            act_node.output = vec![g.clone()];
            nodes.push(act_node);
            nodes.push(node(
                "QuantizeLinear",
                fresh("act_q"),
                &[&g, &sy_name, &zy_name],
                &[&q_out],
            ));
        }
    }
    Some(Rewrite {
        at,
        nodes,
        remove,
        inits,
        activation_folded: act_folded,
    })
}

/// `MatMul(DQ(a), DQ(b))` or `Gemm(DQ(a), DQ(b), bias)` with `b` constant:
/// `MatMulInteger`, then the float epilogue (times the scales, plus the
/// bias), under the original output's name.
fn matmul(ix: &Index, at: usize, fresh: &dyn Fn(&str) -> String) -> Option<Rewrite> {
    let c = &ix.nodes[at];
    let gemm = c.op_type == "Gemm";
    if gemm
        && (attr_int(c, "transA", 0) != 0
            || attr_float(c, "alpha", 1.0) != 1.0
            || attr_float(c, "beta", 1.0) != 1.0)
    {
        return None;
    }
    let a = ix.dequant(c.input.first()?)?;
    let b = ix.dequant(c.input.get(1)?)?;
    if a.input_is_init || !b.input_is_init || a.scales.len() != 1 {
        return None;
    }
    let bt = ix.inits[b.input.as_str()];
    let [rows, cols] = bt.dims[..] else {
        return None;
    };
    let trans_b = gemm && attr_int(c, "transB", 0) != 0;
    let n = usize::try_from(if trans_b { rows } else { cols }).ok()?;
    let values = bytes8(bt)?;
    let (r, k) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
    if n == 0 || r.checked_mul(k) != Some(values.len()) {
        return None;
    }
    // Per-column scales: axis 1 of b as stored ([K, N]), axis 0 when
    // transposed ([N, K]).
    let b_scales = per_channel(&b, n, if trans_b { 0 } else { 1 })?;
    if b.zero_points.iter().any(|&z| z != b.zero_points[0]) {
        return None;
    }
    // MatMul then a Q, all per-tensor: QLinearMatMul, as a QOperator export.
    if !gemm && b.scales.len() == 1 {
        let y = c.output.first()?;
        if let Some((q_at, (_, _, _, sy_name, zy_name))) =
            ix.sole_reader(y).and_then(|q| Some((q, ix.quant(q)?)))
        {
            let q_out = ix.nodes[q_at].output.first()?;
            let qmm = node(
                "QLinearMatMul",
                c.name.clone(),
                &[
                    &a.input,
                    &a.scale_name,
                    &a.zero_point_name,
                    &b.input,
                    &b.scale_name,
                    &b.zero_point_name,
                    &sy_name,
                    &zy_name,
                ],
                &[q_out],
            );
            return Some(Rewrite {
                at,
                nodes: vec![qmm],
                remove: vec![q_at],
                inits: vec![],
                activation_folded: false,
            });
        }
    }
    let mut inits = Vec::new();
    let b_name = if trans_b {
        let v = values;
        let t: Vec<i32> = (0..k * r).map(|i| v[(i % r) * k + i / r]).collect();
        let name = fresh("b_t");
        inits.push(tensor_8(name.clone(), vec![cols, rows], b.dt, &t));
        name
    } else {
        b.input.clone()
    };
    let b_zp = if b.zero_points.len() == 1 {
        b.zero_point_name.clone()
    } else {
        let name = fresh("b_zero_point");
        inits.push(tensor_8(name.clone(), vec![], b.dt, &[b.zero_points[0]]));
        name
    };
    let scale: Vec<f32> = b_scales.iter().map(|s| s * a.scales[0]).collect();
    let scale_name = fresh("scale");
    if scale.iter().all(|&s| s == scale[0]) {
        inits.push(tensor_f32(scale_name.clone(), vec![], &scale[..1]));
    } else {
        inits.push(tensor_f32(scale_name.clone(), vec![n as i64], &scale));
    }
    let y = c.output.first()?.clone();
    let acc = fresh("acc");
    let accf = fresh("acc_f32");
    let scaled = fresh("scaled");
    let bias = c.input.get(2).filter(|s| gemm && !s.is_empty()).cloned();
    let mut nodes = vec![
        node(
            "MatMulInteger",
            c.name.clone(),
            &[&a.input, &b_name, &a.zero_point_name, &b_zp],
            &[&acc],
        ),
        {
            let mut cast = node("Cast", fresh("cast"), &[&acc], &[&accf]);
            cast.attribute.push(pb::AttributeProto {
                name: "to".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: i64::from(FLOAT),
                ..Default::default()
            });
            cast
        },
    ];
    match bias {
        None => nodes.push(node("Mul", fresh("mul"), &[&accf, &scale_name], &[&y])),
        Some(bias) => {
            nodes.push(node("Mul", fresh("mul"), &[&accf, &scale_name], &[&scaled]));
            nodes.push(node("Add", fresh("add"), &[&scaled, &bias], &[&y]));
        }
    }
    Some(Rewrite {
        at,
        nodes,
        remove: vec![],
        inits,
        activation_folded: false,
    })
}

/// Rewrites QDQ convolutions and matrix products of `model` onto integer
/// operators (see the module's docs); returns what it rewrote.
pub fn fold(model: &mut pb::ModelProto) -> Folded {
    let Some(g) = model.graph.as_mut() else {
        return Folded::default();
    };
    let mut folded = Folded::default();
    let rewrites: Vec<Rewrite> = {
        let ix = Index::new(g);
        let taken: std::cell::RefCell<HashSet<String>> = Default::default();
        let fresh = |what: &str| {
            let mut k = 0;
            loop {
                let name = format!("bedside_qdq.{what}.{k}");
                if !ix.producer.contains_key(name.as_str())
                    && !ix.inits.contains_key(name.as_str())
                    && taken.borrow_mut().insert(name.clone())
                {
                    return name;
                }
                k += 1;
            }
        };
        let mut claimed = HashSet::new();
        let mut out = Vec::new();
        for (i, n) in g.node.iter().enumerate() {
            if !standard(n) || claimed.contains(&i) {
                continue;
            }
            let r = match n.op_type.as_str() {
                "Conv" => conv(&ix, i, &fresh),
                "MatMul" | "Gemm" => matmul(&ix, i, &fresh),
                _ => None,
            };
            if let Some(r) = r {
                if r.remove.iter().any(|k| claimed.contains(k)) {
                    continue;
                }
                claimed.extend(r.remove.iter().copied());
                if n.op_type == "Conv" {
                    folded.conv += 1;
                } else {
                    folded.matmul += 1;
                }
                folded.activations += usize::from(r.activation_folded);
                out.push(r);
            }
        }
        out
    };
    if rewrites.is_empty() {
        return folded;
    }
    let mut replace: HashMap<usize, Vec<pb::NodeProto>> = HashMap::new();
    let mut removed = HashSet::new();
    for r in rewrites {
        removed.extend(r.remove);
        g.initializer.extend(r.inits);
        replace.insert(r.at, r.nodes);
    }
    let old = std::mem::take(&mut g.node);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(nodes) = replace.remove(&i) {
            g.node.extend(nodes);
        } else if !removed.contains(&i) {
            g.node.push(n);
        }
    }
    prune(g);
    folded
}

/// Drops the `DequantizeLinear` nodes nothing reads any more (the float
/// weights of folded operators), then initializers and value infos of
/// tensors that are gone.
fn prune(g: &mut pb::GraphProto) {
    loop {
        let read: HashSet<&str> = g
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .chain(g.output.iter().map(|v| v.name.as_str()))
            .collect();
        let dead: Vec<usize> = g
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.op_type == "DequantizeLinear"
                    && n.output.iter().all(|o| !read.contains(o.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        if dead.is_empty() {
            break;
        }
        for i in dead.into_iter().rev() {
            g.node.remove(i);
        }
    }
    let read: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(g.output.iter().map(|v| v.name.clone()))
        .collect();
    let inputs: HashSet<String> = g.input.iter().map(|v| v.name.clone()).collect();
    g.initializer
        .retain(|t| read.contains(&t.name) || inputs.contains(&t.name));
    let produced: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.initializer.iter().map(|t| t.name.clone()))
        .chain(inputs)
        .collect();
    g.value_info.retain(|v| produced.contains(&v.name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    fn value(name: &str, elem: i32, dims: &[i64]) -> pb::ValueInfoProto {
        let dims: Vec<Option<i64>> = dims.iter().copied().map(Some).collect();
        crate::infer::graph::tests::value(name, elem, &dims)
    }

    fn scalar_f32(name: &str, v: f32) -> pb::TensorProto {
        tensor_f32(name.into(), vec![], &[v])
    }

    fn scalar_i8(name: &str, v: i32) -> pb::TensorProto {
        tensor_8(name.into(), vec![], INT8, &[v])
    }

    fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i,
            ..Default::default()
        }
    }

    /// Seeded pseudo-random int8 values.
    fn noise(n: usize, seed: u32) -> Vec<i32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                i32::from((s >> 24) as u8 as i8)
            })
            .collect()
    }

    /// `x:i8[1,2,6,6] -> DQ -> Conv(DQ(w) 3x3, pad 1, float bias) -> act ->
    /// Q(0.05, zy) -> DQ -> y:f32`.
    fn conv_graph(act: Option<&str>, zy: i32) -> pb::ModelProto {
        let mut nodes = vec![
            node(
                "DequantizeLinear",
                "dqx".into(),
                &["x", "sx", "zx"],
                &["xf"],
            ),
            {
                let mut dq = node(
                    "DequantizeLinear",
                    "dqw".into(),
                    &["wq", "sw", "zw"],
                    &["wf"],
                );
                dq.attribute.push(int_attr("axis", 0));
                dq
            },
        ];
        let mut conv = node("Conv", "conv".into(), &["xf", "wf", "b"], &["c"]);
        conv.attribute.push(pb::AttributeProto {
            name: "pads".into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: vec![1, 1, 1, 1],
            ..Default::default()
        });
        nodes.push(conv);
        let q_in = match act {
            None => "c",
            Some(op) => {
                let mut inputs = vec!["c"];
                if op == "Clip" {
                    inputs.extend(["lo", "hi"]);
                }
                nodes.push(node(op, "act".into(), &inputs, &["a"]));
                "a"
            }
        };
        nodes.push(node(
            "QuantizeLinear",
            "q".into(),
            &[q_in, "sy", "zy"],
            &["yq"],
        ));
        nodes.push(node(
            "DequantizeLinear",
            "dqy".into(),
            &["yq", "sy", "zy"],
            &["y"],
        ));
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(pb::GraphProto {
                node: nodes,
                initializer: vec![
                    scalar_f32("sx", 0.02),
                    scalar_i8("zx", -3),
                    tensor_8("wq".into(), vec![3, 2, 3, 3], INT8, &noise(54, 7)),
                    tensor_f32("sw".into(), vec![3], &[0.01, 0.004, 0.02]),
                    tensor_8("zw".into(), vec![3], INT8, &[0, 0, 0]),
                    tensor_f32("b".into(), vec![3], &[0.3, -0.2, 0.05]),
                    scalar_f32("sy", 0.05),
                    scalar_i8("zy", zy),
                    scalar_f32("lo", 0.0),
                    scalar_f32("hi", 2.0),
                ],
                input: vec![value("x", INT8, &[1, 2, 6, 6])],
                output: vec![value("y", FLOAT, &[1, 3, 6, 6])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(model: &pb::ModelProto, shape: &[usize], x: &[i32]) -> Vec<f32> {
        let plan = tract_onnx::onnx()
            .model_for_proto_model(model)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x: Vec<i8> = x.iter().map(|&v| v as i8).collect();
        let input = tract_ndarray::ArrayD::from_shape_vec(shape, x).unwrap();
        let out = plan.run(tvec!(Tensor::from(input).into())).unwrap();
        let out = out[0].cast_to::<f32>().unwrap();
        out.try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    fn ops(model: &pb::ModelProto) -> Vec<&str> {
        let g = model.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    /// Folded and float runs agree to one output step (0.05): the rewrite
    /// moves the rounding, nothing else.
    fn check_conv(act: Option<&str>, zy: i32, folded_act: usize, kept: &[&str]) {
        let float = conv_graph(act, zy);
        let mut int = float.clone();
        let f = fold(&mut int);
        assert_eq!(
            f,
            Folded {
                conv: 1,
                matmul: 0,
                activations: folded_act
            },
            "{act:?} zy {zy}"
        );
        let got = ops(&int);
        assert_eq!(got, kept, "{act:?} zy {zy}");
        for seed in 1..4 {
            let x = noise(72, seed);
            let a = run(&float, &[1, 2, 6, 6], &x);
            let b = run(&int, &[1, 2, 6, 6], &x);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 0.0501, "{act:?} zy {zy}: {worst}");
        }
    }

    #[test]
    fn a_conv_and_its_relu_fold_when_saturation_does_the_relu() {
        check_conv(Some("Relu"), -128, 1, &["QLinearConv", "DequantizeLinear"]);
    }

    #[test]
    fn a_relu_that_saturation_cannot_do_stays_as_a_table() {
        check_conv(
            Some("Relu"),
            -10,
            0,
            &[
                "QLinearConv",
                "DequantizeLinear",
                "Relu",
                "QuantizeLinear",
                "DequantizeLinear",
            ],
        );
    }

    #[test]
    fn a_clip_wider_than_the_output_range_folds_a_narrower_one_stays() {
        // zy -128, step 0.05: the output spans 0 to 12.75; Clip(0, 2) cuts it.
        check_conv(
            Some("Clip"),
            -128,
            0,
            &[
                "QLinearConv",
                "DequantizeLinear",
                "Clip",
                "QuantizeLinear",
                "DequantizeLinear",
            ],
        );
        check_conv(None, 5, 0, &["QLinearConv", "DequantizeLinear"]);
    }

    #[test]
    fn gemm_with_transposed_weights_becomes_an_integer_product() {
        let mut gemm = node("Gemm", "fc".into(), &["af", "wf", "b"], &["y"]);
        gemm.attribute.push(int_attr("transB", 1));
        let float = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(pb::GraphProto {
                node: vec![
                    node(
                        "DequantizeLinear",
                        "dqa".into(),
                        &["a", "sa", "za"],
                        &["af"],
                    ),
                    node(
                        "DequantizeLinear",
                        "dqw".into(),
                        &["wq", "sw", "zw"],
                        &["wf"],
                    ),
                    gemm,
                ],
                initializer: vec![
                    scalar_f32("sa", 0.03),
                    scalar_i8("za", 4),
                    tensor_8("wq".into(), vec![5, 16], INT8, &noise(80, 3)),
                    scalar_f32("sw", 0.007),
                    scalar_i8("zw", 0),
                    tensor_f32("b".into(), vec![5], &[0.1, 0.2, -0.3, 0.0, 1.0]),
                ],
                input: vec![value("a", INT8, &[2, 16])],
                output: vec![value("y", FLOAT, &[2, 5])],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut int = float.clone();
        assert_eq!(
            fold(&mut int),
            Folded {
                conv: 0,
                matmul: 1,
                activations: 0
            }
        );
        assert_eq!(ops(&int), ["MatMulInteger", "Cast", "Mul", "Add"]);
        let x = noise(32, 11);
        let a = run(&float, &[2, 16], &x);
        let b = run(&int, &[2, 16], &x);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} {b}");
        }
    }

    #[test]
    fn graphs_without_the_pattern_are_left_alone() {
        // Weights that are not constant, or a convolution whose output is
        // read twice: nothing to fold.
        let mut g = conv_graph(None, 0);
        g.graph
            .as_mut()
            .unwrap()
            .output
            .push(value("c", FLOAT, &[1, 3, 6, 6]));
        let before = g.clone();
        assert_eq!(fold(&mut g), Folded::default());
        assert_eq!(g, before);
    }
}
