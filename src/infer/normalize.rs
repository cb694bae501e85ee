//! A user's quantized ONNX graph made into one the runtime loads, for
//! `bedside model import`.
//!
//! onnxruntime's `quantize_static` writes graphs that take float input and
//! quantize it with a `QuantizeLinear`; its QOperator format uses
//! com.microsoft operators (`QLinearAdd`, `QLinearGlobalAveragePool`,
//! `QGemm`, ...) wherever a network has residual adds, pooling or a dense
//! head; and older defaults quantize activations as uint8. bedside feeds
//! int8 straight from its preprocessing table and runs standard operators
//! in tract, so [`normalize`] rewrites the protobuf:
//!
//! - uint8 tensors become int8: every uint8 initializer (zero points,
//!   weights, pad values) is shifted by -128. Every operator that reads a
//!   quantized tensor reads it against its zero point (`x - zp`), which the
//!   shift keeps, or only moves or orders its values (`MaxPool`, `Reshape`,
//!   `Concat`), which a shift by a constant also keeps, so the outputs are
//!   the same numbers.
//! - com.microsoft's quantized operators become `DequantizeLinear` ->
//!   the standard float operator -> `QuantizeLinear`, with the same scales
//!   and zero points (the QDQ form of the same computation; bedside's own
//!   QDQ pass, `qdq.rs`, then puts `Gemm` back on int8 kernels at load).
//! - the input's `QuantizeLinear` goes (directly on the input, or after a
//!   `Reshape`/`Flatten` that onnxruntime leaves in float): the graph input
//!   becomes int8, and its scale and zero point go to the manifest.
//!
//! What it cannot take is an error that says what to change.

use std::collections::{BTreeMap, HashMap, HashSet};

use tract_onnx::pb;

use super::qdq::{
    FLOAT, INT8, INT32, UINT8, attr_int, bytes8, floats, int32s, node, standard, tensor_8,
    tensor_f32, tensor_i32,
};

/// What [`normalize`] did, and the input it leaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    pub input_name: String,
    /// `[1, 1, H, W]`.
    pub input_shape: Vec<usize>,
    /// The int8 input's quantization.
    pub input_scale: f32,
    pub input_zero_point: i32,
    /// Whether a `QuantizeLinear` on the input was removed (the graph took
    /// float), or the graph already took int8.
    pub input_quantize_removed: bool,
    /// uint8 initializers shifted to int8.
    pub shifted_to_int8: usize,
    /// com.microsoft operators expanded, per operator.
    pub expanded: BTreeMap<String, usize>,
}

/// Why a graph cannot be made into a bundle; each says what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormalizeError {
    #[error("the file holds no graph")]
    NoGraph,
    #[error(
        "the graph has {0} inputs; bedside feeds one image: export the network with a single input"
    )]
    Inputs(usize),
    #[error(
        "input '{name}' has shape {shape}: bedside needs a fixed [1, 1, H, W] (export with batch 1 and a fixed height and width, e.g. torch.onnx.export without dynamic_axes)"
    )]
    Shape { name: String, shape: String },
    #[error(
        "input '{name}' has {channels} channels: bedside feeds one gray channel (import with --gray-from-rgb to fold the first convolution over the colour channels)"
    )]
    Channels { name: String, channels: i64 },
    #[error(
        "input '{name}' is {ty}: give the int8 model as onnxruntime's quantize_static writes it (float input, quantized inside) or with an int8 input"
    )]
    InputType { name: String, ty: &'static str },
    #[error(
        "nothing quantizes the float input '{name}': this looks like a float model; quantize it first (onnxruntime.quantization.quantize_static, QOperator or QDQ) and give the float model as --f32"
    )]
    NotQuantized { name: String },
    #[error(
        "the input's QuantizeLinear (node '{node}') has a per-channel or computed scale or zero point: bedside quantizes the input with one scale and zero point"
    )]
    InputQuantization { node: String },
    #[error(
        "input '{name}' is read by {readers} operators besides its QuantizeLinear: bedside can only feed it quantized"
    )]
    InputReadAsFloat { name: String, readers: usize },
    #[error(
        "operator {domain}:{op} (node '{node}') is an onnxruntime extension bedside cannot run or expand: {hint}"
    )]
    Extension {
        domain: String,
        op: String,
        node: String,
        hint: &'static str,
    },
    #[error(
        "output '{name}' is {ty}: bedside reads float outputs (end the graph with a DequantizeLinear, as quantize_static does by default)"
    )]
    OutputType { name: String, ty: &'static str },
    #[error("node '{node}' ({op}): {reason}")]
    Malformed {
        node: String,
        op: String,
        reason: String,
    },
}

fn type_name(code: i32) -> &'static str {
    match code {
        FLOAT => "f32",
        UINT8 => "u8",
        INT8 => "i8",
        INT32 => "i32",
        7 => "i64",
        10 => "f16",
        11 => "f64",
        _ => "another type",
    }
}

/// `(elem_type, dims)` of a declared value; a dimension is `None` when it
/// is symbolic or missing.
fn declared(v: &pb::ValueInfoProto) -> (i32, Option<Vec<Option<i64>>>) {
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return (0, None);
    };
    let dims = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                _ => None,
            })
            .collect()
    });
    (t.elem_type, dims)
}

fn set_elem_type(v: &mut pb::ValueInfoProto, elem_type: i32) {
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = elem_type;
    }
}

/// Makes `model` loadable by the runtime (see the module's docs). `rgb_ok`
/// lets a 3-channel input through (for `--gray-from-rgb`, which folds it
/// afterwards).
pub fn normalize(model: &mut pb::ModelProto, rgb_ok: bool) -> Result<Normalized, NormalizeError> {
    let g = model.graph.as_mut().ok_or(NormalizeError::NoGraph)?;
    let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let inputs: Vec<usize> = (0..g.input.len())
        .filter(|&i| !inits.contains(&g.input[i].name))
        .collect();
    let &[input_at] = inputs.as_slice() else {
        return Err(NormalizeError::Inputs(inputs.len()));
    };
    let input_name = g.input[input_at].name.clone();
    let (input_type, dims) = declared(&g.input[input_at]);
    let shape_text = |dims: &Option<Vec<Option<i64>>>| match dims {
        None => "unknown".to_string(),
        Some(d) => format!(
            "[{}]",
            d.iter()
                .map(|x| x.map_or("?".to_string(), |v| v.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let input_shape: Vec<usize> = match dims.as_deref() {
        Some([Some(1), Some(c), Some(h), Some(w)]) if *h <= 4096 && *w <= 4096 => {
            if *c != 1 && !(rgb_ok && *c == 3) {
                return Err(NormalizeError::Channels {
                    name: input_name,
                    channels: *c,
                });
            }
            vec![1, *c as usize, *h as usize, *w as usize]
        }
        _ => {
            return Err(NormalizeError::Shape {
                name: input_name,
                shape: shape_text(&dims),
            });
        }
    };
    for out in &g.output {
        let (ty, _) = declared(out);
        if ty != FLOAT && ty != 0 {
            return Err(NormalizeError::OutputType {
                name: out.name.clone(),
                ty: type_name(ty),
            });
        }
    }
    let expanded = expand_extensions(g)?;
    let shifted_to_int8 = shift_uint8(g);
    let mut normalized = Normalized {
        input_name: input_name.clone(),
        input_shape,
        input_scale: 0.0,
        input_zero_point: 0,
        input_quantize_removed: false,
        shifted_to_int8,
        expanded,
    };
    match input_type {
        FLOAT => {
            let (scale, zp) = remove_input_quantize(g, &input_name)?;
            normalized.input_scale = scale;
            normalized.input_zero_point = zp;
            normalized.input_quantize_removed = true;
            // Types recorded for the rewired tensors are now stale; tract
            // infers them again.
            g.value_info.clear();
            set_elem_type(&mut g.input[input_at], INT8);
        }
        INT8 | UINT8 => {
            set_elem_type(&mut g.input[input_at], INT8);
            let facts = super::graph::GraphFacts::read(model).map_err(|reason| {
                NormalizeError::Malformed {
                    node: input_name.clone(),
                    op: "input".into(),
                    reason,
                }
            })?;
            let (scale, zp) = facts.input_quant.ok_or(NormalizeError::NotQuantized {
                name: input_name.clone(),
            })?;
            normalized.input_scale = scale;
            normalized.input_zero_point = zp;
        }
        other => {
            return Err(NormalizeError::InputType {
                name: input_name,
                ty: type_name(other),
            });
        }
    }
    Ok(normalized)
}

/// Removes the `QuantizeLinear` that quantizes the float input `input`
/// (directly, or after a shape-only `Reshape`/`Flatten`) and returns its
/// scale and zero point.
fn remove_input_quantize(
    g: &mut pb::GraphProto,
    input: &str,
) -> Result<(f32, i32), NormalizeError> {
    let readers: Vec<usize> = (0..g.node.len())
        .filter(|&i| g.node[i].input.iter().any(|x| x == input))
        .collect();
    // Shape-only operators between the input and its QuantizeLinear work
    // on any type, so they can take the int8 input as they are.
    let shape_only: HashSet<String> = readers
        .iter()
        .map(|&i| &g.node[i])
        .filter(|n| standard(n) && matches!(n.op_type.as_str(), "Reshape" | "Flatten"))
        .filter(|n| n.input.first().is_some_and(|x| x == input))
        .flat_map(|n| n.output.first().cloned())
        .collect();
    let is_quantize_of_input = |n: &pb::NodeProto| {
        standard(n)
            && n.op_type == "QuantizeLinear"
            && n.input
                .first()
                .is_some_and(|x| x == input || shape_only.contains(x))
    };
    let quantizers: Vec<usize> = (0..g.node.len())
        .filter(|&i| is_quantize_of_input(&g.node[i]))
        .collect();
    let Some(&at) = quantizers.first() else {
        return Err(NormalizeError::NotQuantized { name: input.into() });
    };
    let other_readers = readers
        .iter()
        .filter(|&&i| {
            !is_quantize_of_input(&g.node[i])
                && !g.node[i].output.iter().any(|o| shape_only.contains(o))
        })
        .count();
    let shape_outputs_read_as_float = g
        .node
        .iter()
        .filter(|n| n.input.iter().any(|x| shape_only.contains(x)) && !is_quantize_of_input(n))
        .count();
    if other_readers + shape_outputs_read_as_float > 0 {
        return Err(NormalizeError::InputReadAsFloat {
            name: input.into(),
            readers: other_readers + shape_outputs_read_as_float,
        });
    }
    let q = &g.node[at];
    let bad = || NormalizeError::InputQuantization {
        node: q.name.clone(),
    };
    let find =
        |name: Option<&String>| name.and_then(|n| g.initializer.iter().find(|t| &t.name == n));
    let scale = find(q.input.get(1)).and_then(floats).ok_or_else(bad)?;
    let zp = match q.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => find(Some(name)).and_then(bytes8).ok_or_else(bad)?,
        // No zero point: uint8 output with zero point 0, shifted to int8.
        None => vec![-128],
    };
    let (&[scale], &[zp]) = (scale.as_slice(), zp.as_slice()) else {
        return Err(bad());
    };
    // Every QuantizeLinear of the input is the same quantization (a graph
    // may quantize it once per reader); all go.
    let mut rewire: HashMap<String, String> = HashMap::new();
    for &i in &quantizers {
        let n = &g.node[i];
        let same = n.input.get(1) == q.input.get(1) && n.input.get(2) == q.input.get(2);
        if !same {
            return Err(NormalizeError::InputQuantization {
                node: n.name.clone(),
            });
        }
        if let (Some(out), Some(src)) = (n.output.first(), n.input.first()) {
            rewire.insert(out.clone(), src.clone());
        }
    }
    let removed: HashSet<usize> = quantizers.into_iter().collect();
    let old = std::mem::take(&mut g.node);
    for (i, mut n) in old.into_iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        for x in &mut n.input {
            if let Some(src) = rewire.get(x.as_str()) {
                *x = src.clone();
            }
        }
        g.node.push(n);
    }
    for out in &mut g.output {
        if let Some(src) = rewire.get(out.name.as_str()) {
            out.name = src.clone();
        }
    }
    Ok((scale, zp))
}

/// Shifts every uint8 initializer (and uint8 `Constant`) to int8 by -128;
/// returns how many.
fn shift_uint8(g: &mut pb::GraphProto) -> usize {
    fn shift(t: &mut pb::TensorProto) -> bool {
        if t.data_type != UINT8 {
            return false;
        }
        t.data_type = INT8;
        for b in &mut t.raw_data {
            *b ^= 0x80;
        }
        for v in &mut t.int32_data {
            *v -= 128;
        }
        true
    }
    let mut n = 0;
    for t in &mut g.initializer {
        n += usize::from(shift(t));
    }
    for node in &mut g.node {
        for a in &mut node.attribute {
            if let Some(t) = a.t.as_mut() {
                n += usize::from(shift(t));
            }
        }
    }
    for v in g.input.iter_mut().chain(&mut g.value_info) {
        if declared(v).0 == UINT8 {
            set_elem_type(v, INT8);
        }
    }
    n
}

/// The com.microsoft quantized operators [`expand_extensions`] rewrites.
const EXPANDED: &[&str] = &[
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearConcat",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QGemm",
];

/// Rewrites com.microsoft's quantized operators into `DequantizeLinear` ->
/// standard operator -> `QuantizeLinear`; any other non-standard operator
/// is an error.
fn expand_extensions(g: &mut pb::GraphProto) -> Result<BTreeMap<String, usize>, NormalizeError> {
    let mut counts = BTreeMap::new();
    let mut taken: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.initializer.iter().map(|t| t.name.clone()))
        .chain(g.input.iter().map(|v| v.name.clone()))
        .collect();
    let mut fresh = |what: &str| {
        let mut k = 0;
        loop {
            let name = format!("bedside_import.{what}.{k}");
            if taken.insert(name.clone()) {
                return name;
            }
            k += 1;
        }
    };
    let scales: HashMap<String, Vec<f32>> = g
        .initializer
        .iter()
        .filter_map(|t| Some((t.name.clone(), floats(t)?)))
        .collect();
    let old = std::mem::take(&mut g.node);
    let mut inits = Vec::new();
    for n in old {
        if standard(&n) {
            g.node.push(n);
            continue;
        }
        let ms = n.domain == "com.microsoft";
        if !ms || !EXPANDED.contains(&n.op_type.as_str()) {
            return Err(NormalizeError::Extension {
                domain: n.domain.clone(),
                op: n.op_type.clone(),
                hint: if ms {
                    "quantize without it (leave its op type out of op_types_to_quantize, or use the QDQ format)"
                } else {
                    "bedside runs standard ONNX operators only"
                },
                node: n.name.clone(),
            });
        }
        let malformed = |reason: &str| NormalizeError::Malformed {
            node: n.name.clone(),
            op: n.op_type.clone(),
            reason: reason.into(),
        };
        let input = |k: usize| n.input.get(k).filter(|x| !x.is_empty()).map(String::as_str);
        let need = |k: usize, what: &str| input(k).ok_or_else(|| malformed(&format!("no {what}")));
        let out = n
            .output
            .first()
            .ok_or_else(|| malformed("no output"))?
            .clone();
        let name = if n.name.is_empty() {
            out.clone()
        } else {
            n.name.clone()
        };
        let mut nodes = Vec::new();
        // (float output of the standard operator, its y scale, y zero point)
        let (op_out, y_scale, y_zp): (String, Option<&str>, Option<&str>) = match n.op_type.as_str()
        {
            "QLinearAdd" | "QLinearMul" => {
                let a = dequantize(
                    &mut fresh,
                    &name,
                    (need(0, "A")?, need(1, "A_scale")?, input(2)),
                    None,
                    &mut nodes,
                );
                let b = dequantize(
                    &mut fresh,
                    &name,
                    (need(3, "B")?, need(4, "B_scale")?, input(5)),
                    None,
                    &mut nodes,
                );
                let y = fresh("f");
                let op = if n.op_type == "QLinearAdd" {
                    "Add"
                } else {
                    "Mul"
                };
                nodes.push(node(op, format!("{name}.{op}"), &[&a, &b], &[&y]));
                (y, Some(need(6, "C_scale")?), input(7))
            }
            "QLinearGlobalAveragePool"
            | "QLinearAveragePool"
            | "QLinearSigmoid"
            | "QLinearLeakyRelu" => {
                if attr_int(&n, "channels_last", 0) != 0 {
                    return Err(malformed(
                        "channels_last = 1 (NHWC) is not supported: quantize the network in NCHW",
                    ));
                }
                let x = dequantize(
                    &mut fresh,
                    &name,
                    (need(0, "X")?, need(1, "X_scale")?, input(2)),
                    None,
                    &mut nodes,
                );
                let y = fresh("f");
                let op = n.op_type.trim_start_matches("QLinear");
                let mut f = node(op, format!("{name}.{op}"), &[&x], &[&y]);
                f.attribute = n
                    .attribute
                    .iter()
                    .filter(|a| a.name != "channels_last")
                    .cloned()
                    .collect();
                nodes.push(f);
                (y, Some(need(3, "Y_scale")?), input(4))
            }
            "QLinearConcat" => {
                // Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input.
                let rest = &n.input[2.min(n.input.len())..];
                if rest.is_empty() || rest.len() % 3 != 0 {
                    return Err(malformed("inputs are not (X, scale, zero point) triples"));
                }
                let mut parts = Vec::new();
                for t in rest.chunks_exact(3) {
                    let zp = Some(t[2].as_str()).filter(|z| !z.is_empty());
                    parts.push(dequantize(
                        &mut fresh,
                        &name,
                        (&t[0], &t[1], zp),
                        None,
                        &mut nodes,
                    ));
                }
                let y = fresh("f");
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                let mut f = node("Concat", format!("{name}.Concat"), &refs, &[&y]);
                f.attribute.push(int_attr("axis", attr_int(&n, "axis", 0)));
                nodes.push(f);
                (y, Some(need(0, "Y_scale")?), input(1))
            }
            "QGemm" => {
                let trans_b = attr_int(&n, "transB", 0);
                let b_scale_name = need(4, "B_scale")?;
                let a_scale_name = need(1, "A_scale")?;
                let b_scales = scales
                    .get(b_scale_name)
                    .ok_or_else(|| malformed("B_scale is not a constant"))?;
                // Per-channel B: its scales run along N, B's axis 0 when
                // transposed ([N, K]) and 1 otherwise ([K, N]).
                let axis = (b_scales.len() > 1).then_some(if trans_b != 0 { 0 } else { 1 });
                let a = dequantize(
                    &mut fresh,
                    &name,
                    (need(0, "A")?, a_scale_name, input(2)),
                    None,
                    &mut nodes,
                );
                let b = dequantize(
                    &mut fresh,
                    &name,
                    (need(3, "B")?, b_scale_name, input(5)),
                    axis,
                    &mut nodes,
                );
                let mut gemm_in = vec![a, b];
                if let Some(c) = input(6) {
                    // The int32 bias is in units of alpha * A_scale * B_scale
                    // (com.microsoft's QGemm definition, beta being 1).
                    let a_scale = match scales.get(a_scale_name).map(Vec::as_slice) {
                        Some(&[s]) => s,
                        _ => return Err(malformed("A_scale is not one constant")),
                    };
                    let alpha = super::qdq::attr_float(&n, "alpha", 1.0);
                    let c_scale: Vec<f32> = b_scales.iter().map(|b| alpha * a_scale * b).collect();
                    let c_scale_name = fresh("bias_scale");
                    let dims = if c_scale.len() > 1 {
                        vec![c_scale.len() as i64]
                    } else {
                        vec![]
                    };
                    inits.push(tensor_f32(c_scale_name.clone(), dims, &c_scale));
                    let c_axis = (c_scale.len() > 1).then_some(0);
                    gemm_in.push(dequantize(
                        &mut fresh,
                        &name,
                        (c, &c_scale_name, None),
                        c_axis,
                        &mut nodes,
                    ));
                }
                let y = fresh("f");
                let refs: Vec<&str> = gemm_in.iter().map(String::as_str).collect();
                let mut f = node("Gemm", format!("{name}.Gemm"), &refs, &[&y]);
                f.attribute = n
                    .attribute
                    .iter()
                    .filter(|a| matches!(a.name.as_str(), "alpha" | "transA" | "transB"))
                    .cloned()
                    .collect();
                nodes.push(f);
                (y, input(7), input(8))
            }
            // EXPANDED lists exactly the operators above.
            _ => return Err(malformed("not an operator bedside expands")),
        };
        match y_scale {
            Some(scale) => {
                let mut inputs = vec![op_out.as_str(), scale];
                inputs.extend(y_zp);
                nodes.push(node(
                    "QuantizeLinear",
                    format!("{name}.q"),
                    &inputs,
                    &[&out],
                ));
            }
            // QGemm without a Y scale outputs float.
            None => {
                if let Some(last) = nodes.last_mut() {
                    last.output = vec![out.clone()];
                }
            }
        }
        g.node.extend(nodes);
        *counts.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    g.initializer.extend(inits);
    Ok(counts)
}

/// Appends a `DequantizeLinear` of `(x, scale, zero point)` to `nodes`;
/// returns the name of its float output.
fn dequantize(
    fresh: &mut impl FnMut(&str) -> String,
    name: &str,
    (x, scale, zp): (&str, &str, Option<&str>),
    axis: Option<i64>,
    nodes: &mut Vec<pb::NodeProto>,
) -> String {
    let y = fresh("dq");
    let mut inputs = vec![x, scale];
    inputs.extend(zp);
    let mut d = node(
        "DequantizeLinear",
        format!("{name}.dq{}", nodes.len()),
        &inputs,
        &[&y],
    );
    if let Some(axis) = axis {
        d.attribute.push(int_attr("axis", axis));
    }
    nodes.push(d);
    y
}

fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// What [`fold_rgb`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbFolded {
    /// The convolution whose weights were summed over the colour channels.
    pub conv: String,
    /// Output channels whose int8 weight sums left the int8 range and were
    /// requantized with a larger scale (0 for a float model).
    pub requantized: usize,
}

/// Makes a network that takes three colour channels take one gray channel,
/// for `bedside model import --gray-from-rgb`.
///
/// A gray picture given to a colour network is the same value in all three
/// channels, so its first convolution computes `sum_c w[o, c] * gray`: the
/// weights summed over the channels, on one channel, give the same result.
/// For a float model that is exact. For an int8 model the sums of three
/// int8 weights reach 381: an output channel whose sums leave the int8
/// range is requantized (scale x max/127, its int32 bias rescaled to
/// match), which rounds its weights once more; the per-channel scales this
/// needs are written in place of a per-tensor one. What changes is the
/// model's behaviour, not only its arithmetic: it sees gray pictures, never
/// colour ones, so its accuracy must be checked on gray images.
///
/// The input must be read by one convolution (group 1), directly
/// (`Conv` on a float input, `QLinearConv` on an int8 one) or through a
/// `DequantizeLinear` (QDQ), with constant weights whose zero point is 0.
pub fn fold_rgb(model: &mut pb::ModelProto) -> Result<RgbFolded, NormalizeError> {
    let g = model.graph.as_mut().ok_or(NormalizeError::NoGraph)?;
    let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let input_at = (0..g.input.len())
        .find(|&i| !inits.contains(&g.input[i].name))
        .ok_or(NormalizeError::Inputs(0))?;
    let input = g.input[input_at].name.clone();
    let refuse = |node: &str, op: &str, reason: &str| NormalizeError::Malformed {
        node: node.into(),
        op: op.into(),
        reason: format!("--gray-from-rgb: {reason}"),
    };
    let readers = |g: &pb::GraphProto, name: &str| -> Vec<usize> {
        (0..g.node.len())
            .filter(|&i| g.node[i].input.iter().any(|x| x == name))
            .collect()
    };
    // Through the input's DequantizeLinear (QDQ), if there is one.
    let mut x = input.clone();
    if let [one] = readers(g, &x).as_slice()
        && g.node[*one].op_type == "DequantizeLinear"
        && standard(&g.node[*one])
    {
        x = g.node[*one].output.first().cloned().unwrap_or_default();
    }
    let conv_at = match readers(g, &x).as_slice() {
        [one] => *one,
        many => {
            return Err(refuse(
                &input,
                "input",
                &format!(
                    "the input is read by {} operators, not one convolution",
                    many.len()
                ),
            ));
        }
    };
    let conv = g.node[conv_at].clone();
    let (name, op) = (conv.name.clone(), conv.op_type.clone());
    if !standard(&conv) || !matches!(op.as_str(), "Conv" | "QLinearConv") {
        return Err(refuse(
            &name,
            &op,
            "the input's first operator is not a convolution",
        ));
    }
    if attr_int(&conv, "group", 1) != 1 || conv.input.first() != Some(&x) {
        return Err(refuse(&name, &op, "the first convolution is grouped"));
    }
    // The names of the weight tensor, its scale and zero point (when int8),
    // and the bias with its scale (when an int32 bias needs rescaling).
    let (w_name, int8): (String, Option<(String, String)>);
    let mut bias: Option<(String, Option<String>)> = None;
    let dq_of = |g: &pb::GraphProto, t: &str| {
        g.node
            .iter()
            .find(|n| n.output.first().is_some_and(|o| o == t) && n.op_type == "DequantizeLinear")
            .cloned()
    };
    if op == "QLinearConv" {
        let get = |k: usize| conv.input.get(k).filter(|s| !s.is_empty()).cloned();
        w_name = get(3).ok_or_else(|| refuse(&name, &op, "no weights"))?;
        int8 = Some((
            get(4).ok_or_else(|| refuse(&name, &op, "no weight scale"))?,
            get(5).ok_or_else(|| refuse(&name, &op, "no weight zero point"))?,
        ));
        bias = get(8).map(|b| (b, None));
    } else {
        let w = conv.input.get(1).cloned().unwrap_or_default();
        match dq_of(g, &w) {
            Some(d) => {
                w_name = d.input.first().cloned().unwrap_or_default();
                int8 = Some((
                    d.input.get(1).cloned().unwrap_or_default(),
                    d.input.get(2).cloned().unwrap_or_default(),
                ));
            }
            None => {
                w_name = w;
                int8 = None;
            }
        }
        if let Some(b) = conv.input.get(2).filter(|s| !s.is_empty())
            && let Some(d) = dq_of(g, b)
        {
            bias = Some((
                d.input.first().cloned().unwrap_or_default(),
                d.input.get(1).cloned(),
            ));
        }
    }
    if readers(g, &w_name).len() != 1 {
        return Err(refuse(
            &name,
            &op,
            "its weights are shared with another operator",
        ));
    }
    let find = |g: &pb::GraphProto, t: &str| g.initializer.iter().position(|i| i.name == t);
    let wi =
        find(g, &w_name).ok_or_else(|| refuse(&name, &op, "its weights are not a constant"))?;
    let dims = g.initializer[wi].dims.clone();
    let [o, 3, kh, kw] = dims.as_slice() else {
        return Err(refuse(
            &name,
            &op,
            &format!("weights of shape {dims:?}, not [O, 3, kh, kw]"),
        ));
    };
    let (o, k) = (*o as usize, (*kh * *kw) as usize);
    let mut requantized = 0;
    match int8 {
        None => {
            let w = floats(&g.initializer[wi])
                .ok_or_else(|| refuse(&name, &op, "float weights expected"))?;
            let mut folded = vec![0f32; o * k];
            for (oc, out) in folded.chunks_exact_mut(k).enumerate() {
                for c in 0..3 {
                    for (j, v) in out.iter_mut().enumerate() {
                        *v += w[(oc * 3 + c) * k + j];
                    }
                }
            }
            g.initializer[wi] = tensor_f32(w_name.clone(), vec![o as i64, 1, *kh, *kw], &folded);
        }
        Some((scale_name, zp_name)) => {
            let w = bytes8(&g.initializer[wi])
                .ok_or_else(|| refuse(&name, &op, "int8 weights expected"))?;
            let si = find(g, &scale_name)
                .ok_or_else(|| refuse(&name, &op, "the weight scale is not a constant"))?;
            let scales = floats(&g.initializer[si]).unwrap_or_default();
            let zi = find(g, &zp_name)
                .ok_or_else(|| refuse(&name, &op, "the weight zero point is not a constant"))?;
            let zp_type = g.initializer[zi].data_type;
            if bytes8(&g.initializer[zi]).is_none_or(|z| z.iter().any(|&v| v != 0)) {
                return Err(refuse(&name, &op, "weights with a non-zero zero point"));
            }
            if scales.len() != 1 && scales.len() != o {
                return Err(refuse(
                    &name,
                    &op,
                    "weight scales neither per-tensor nor per output channel",
                ));
            }
            let mut new_w = vec![0i32; o * k];
            let mut new_scales = vec![0f32; o];
            let mut ratio = vec![1f32; o];
            for oc in 0..o {
                let s = scales[if scales.len() == 1 { 0 } else { oc }];
                let sums: Vec<i32> = (0..k)
                    .map(|j| (0..3).map(|c| w[(oc * 3 + c) * k + j]).sum())
                    .collect();
                let max = sums.iter().map(|v| v.abs()).max().unwrap_or(0);
                if max > 127 {
                    requantized += 1;
                    ratio[oc] = max as f32 / 127.0;
                    for (j, &v) in sums.iter().enumerate() {
                        new_w[oc * k + j] = (v as f32 / ratio[oc]).round_ties_even() as i32;
                    }
                } else {
                    new_w[oc * k..(oc + 1) * k].copy_from_slice(&sums);
                }
                new_scales[oc] = s * ratio[oc];
            }
            let wt = g.initializer[wi].data_type;
            g.initializer[wi] = tensor_8(w_name.clone(), vec![o as i64, 1, *kh, *kw], wt, &new_w);
            g.initializer[si] = tensor_f32(scale_name.clone(), vec![o as i64], &new_scales);
            g.initializer[zi] = tensor_8(zp_name.clone(), vec![o as i64], zp_type, &vec![0; o]);
            // Per-channel now: a QDQ weight's DequantizeLinear runs along axis 0.
            for n in &mut g.node {
                if n.op_type == "DequantizeLinear" && n.input.first() == Some(&w_name) {
                    n.attribute.retain(|a| a.name != "axis");
                    n.attribute.push(int_attr("axis", 0));
                }
            }
            if let Some((b_name, b_scale)) = bias {
                let bi = find(g, &b_name)
                    .ok_or_else(|| refuse(&name, &op, "the bias is not a constant"))?;
                let b = int32s(&g.initializer[bi])
                    .ok_or_else(|| refuse(&name, &op, "int32 bias expected"))?;
                if b.len() != o {
                    return Err(refuse(&name, &op, "bias length is not the output channels"));
                }
                let nb: Vec<i32> = b
                    .iter()
                    .zip(&ratio)
                    .map(|(&v, r)| (v as f64 / f64::from(*r)).round_ties_even() as i32)
                    .collect();
                g.initializer[bi] = tensor_i32(b_name.clone(), vec![o as i64], &nb);
                if let Some(bs) = b_scale {
                    let bsi = find(g, &bs)
                        .ok_or_else(|| refuse(&name, &op, "the bias scale is not a constant"))?;
                    let old = floats(&g.initializer[bsi]).unwrap_or_default();
                    let new: Vec<f32> = (0..o)
                        .map(|oc| old[if old.len() == 1 { 0 } else { oc }] * ratio[oc])
                        .collect();
                    g.initializer[bsi] = tensor_f32(bs.clone(), vec![o as i64], &new);
                    for n in &mut g.node {
                        if n.op_type == "DequantizeLinear" && n.input.first() == Some(&b_name) {
                            n.attribute.retain(|a| a.name != "axis");
                            n.attribute.push(int_attr("axis", 0));
                        }
                    }
                }
            }
        }
    }
    // The input: one channel now.
    if let Some(pb::type_proto::Value::TensorType(t)) = g.input[input_at]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
        && let Some(shape) = t.shape.as_mut()
        && let Some(c) = shape.dim.get_mut(1)
    {
        c.value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(1));
    }
    g.value_info.clear();
    Ok(RgbFolded {
        conv: if name.is_empty() { op } else { name },
        requantized,
    })
}
