//! What an ONNX graph is, read from its protobuf before tract builds anything:
//! its operators, its one input (type, shape, and the int8 quantization the
//! first quantized operator expects of it) and its outputs.
//!
//! The loader compares these facts with the manifest, so a model that cannot
//! run here, or that does not take what the preprocessor makes, is refused
//! with a reason that names it, instead of failing somewhere inside tract
//! (or, worse, running on misread input).

use std::collections::BTreeMap;

use tract_onnx::pb;

/// ONNX `TensorProto.DataType` codes used here.
pub const ONNX_FLOAT: i32 = 1;
pub const ONNX_INT8: i32 = 3;

/// Type and shape of a graph input or output, as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueFact {
    pub name: String,
    pub elem_type: i32,
    /// `None` for a symbolic or missing dimension.
    pub dims: Option<Vec<Option<i64>>>,
}

/// The graph's facts.
#[derive(Clone, Debug)]
pub struct GraphFacts {
    /// Node count per operator, keyed `op_type` (default domain) or
    /// `domain:op_type`.
    pub ops: BTreeMap<String, usize>,
    /// The operator names as tract looks them up (`op_type` only).
    op_types: BTreeMap<String, String>,
    pub input: ValueFact,
    pub outputs: Vec<ValueFact>,
    /// (scale, zero point) that the quantized operator consuming the input
    /// expects of it, when the input is int8.
    pub input_quant: Option<(f32, i32)>,
}

fn elem_name(code: i32) -> &'static str {
    match code {
        ONNX_FLOAT => "f32",
        2 => "u8",
        ONNX_INT8 => "i8",
        6 => "i32",
        7 => "i64",
        10 => "f16",
        _ => "another type",
    }
}

impl ValueFact {
    fn from_proto(v: &pb::ValueInfoProto) -> ValueFact {
        let tensor = v
            .r#type
            .as_ref()
            .and_then(|t| t.value.as_ref())
            .map(|value| {
                let pb::type_proto::Value::TensorType(t) = value;
                t
            });
        let dims = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) => Some(n),
                    _ => None,
                })
                .collect()
        });
        ValueFact {
            name: v.name.clone(),
            elem_type: tensor.map_or(0, |t| t.elem_type),
            dims,
        }
    }

    pub fn type_name(&self) -> &'static str {
        elem_name(self.elem_type)
    }

    /// The declared shape, with `?` for symbolic dimensions.
    pub fn shape_text(&self) -> String {
        match &self.dims {
            None => "unknown".into(),
            Some(d) => {
                let parts: Vec<String> = d
                    .iter()
                    .map(|x| x.map_or("?".into(), |n| n.to_string()))
                    .collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }

    /// True unless a declared, concrete dimension contradicts `shape`.
    pub fn fits(&self, shape: &[usize]) -> bool {
        match &self.dims {
            None => true,
            Some(d) => {
                d.len() == shape.len()
                    && d.iter()
                        .zip(shape)
                        .all(|(a, &b)| a.is_none_or(|n| n == b as i64))
            }
        }
    }
}

/// A scalar initializer's first value, as f32 or i32.
fn scalar(t: &pb::TensorProto) -> Option<f64> {
    match t.data_type {
        ONNX_FLOAT => t.float_data.first().map(|&x| f64::from(x)).or_else(|| {
            let b = t.raw_data.get(..4)?;
            Some(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }),
        // int8 / uint8 / int32 zero points: int32_data or one raw byte.
        ONNX_INT8 => t
            .int32_data
            .first()
            .map(|&x| f64::from(x))
            .or_else(|| t.raw_data.first().map(|&b| f64::from(b as i8))),
        2 => t
            .int32_data
            .first()
            .map(|&x| f64::from(x))
            .or_else(|| t.raw_data.first().map(|&b| f64::from(b))),
        _ => None,
    }
}

impl GraphFacts {
    /// Reads the facts of a decoded model. Errors name what is missing.
    pub fn read(model: &pb::ModelProto) -> Result<GraphFacts, String> {
        let graph = model.graph.as_ref().ok_or("the file holds no graph")?;
        let inits: BTreeMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let inputs: Vec<ValueFact> = graph
            .input
            .iter()
            .filter(|v| !inits.contains_key(v.name.as_str()))
            .map(ValueFact::from_proto)
            .collect();
        let input = match inputs.as_slice() {
            [one] => one.clone(),
            [] => return Err("the graph has no input".into()),
            many => {
                return Err(format!(
                    "the graph has {} inputs; bedside feeds exactly one",
                    many.len()
                ));
            }
        };
        if graph.output.is_empty() {
            return Err("the graph has no output".into());
        }
        let mut ops = BTreeMap::new();
        let mut op_types = BTreeMap::new();
        for n in &graph.node {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}:{}", n.domain, n.op_type)
            };
            *ops.entry(key.clone()).or_insert(0) += 1;
            op_types.insert(key, n.op_type.clone());
        }
        // The int8 input's quantization is given by the first quantized
        // operator that reads it: QLinearConv/QLinearMatMul (x, x_scale,
        // x_zero_point, ...) or DequantizeLinear (x, scale, zero_point).
        let input_quant = graph
            .node
            .iter()
            .find(|n| {
                n.input.first() == Some(&input.name)
                    && matches!(
                        n.op_type.as_str(),
                        "QLinearConv" | "QLinearMatMul" | "DequantizeLinear"
                    )
            })
            .and_then(|n| {
                let scale = scalar(inits.get(n.input.get(1)?.as_str())?)?;
                let zp = match n.input.get(2) {
                    Some(name) => scalar(inits.get(name.as_str())?)?,
                    None => 0.0,
                };
                Some((scale as f32, zp as i32))
            });
        Ok(GraphFacts {
            ops,
            op_types,
            input,
            outputs: graph.output.iter().map(ValueFact::from_proto).collect(),
            input_quant,
        })
    }

    /// Operators that `known` (the names tract can build) lacks, with their
    /// node counts, as "QLinearAdd (com.microsoft, 3 nodes)".
    pub fn unsupported(&self, known: impl Fn(&str) -> bool) -> Vec<String> {
        self.ops
            .iter()
            .filter(|(key, _)| !known(&self.op_types[*key]))
            .map(|(key, n)| format!("{key} ({n} node{})", if *n == 1 { "" } else { "s" }))
            .collect()
    }

    /// Operator names without counts.
    pub fn op_names(&self) -> Vec<String> {
        self.ops.keys().cloned().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pb::tensor_shape_proto::{Dimension, dimension};

    /// A declared graph input or output (`None`: a symbolic dimension);
    /// `qdq.rs`'s tests build their graphs with it too.
    pub(crate) fn value(name: &str, elem: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: elem,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| Dimension {
                                value: Some(match d {
                                    Some(n) => dimension::Value::DimValue(*n),
                                    None => dimension::Value::DimParam("N".into()),
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, domain: &str, inputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            domain: domain.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![format!("{op}_out")],
            ..Default::default()
        }
    }

    fn model() -> pb::ModelProto {
        let scale = pb::TensorProto {
            name: "s".into(),
            data_type: ONNX_FLOAT,
            raw_data: 0.25f32.to_le_bytes().to_vec(),
            ..Default::default()
        };
        let zp = pb::TensorProto {
            name: "z".into(),
            data_type: ONNX_INT8,
            raw_data: vec![(-128i8) as u8],
            ..Default::default()
        };
        pb::ModelProto {
            graph: Some(pb::GraphProto {
                input: vec![value("x", ONNX_INT8, &[None, Some(1), Some(8), Some(8)])],
                output: vec![value("y", ONNX_FLOAT, &[Some(1), Some(4)])],
                initializer: vec![scale, zp],
                node: vec![
                    node("QLinearConv", "", &["x", "s", "z"]),
                    node("QLinearAdd", "com.microsoft", &["a", "b"]),
                    node("QLinearAdd", "com.microsoft", &["c", "d"]),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_ops_input_and_its_quantization() {
        let f = GraphFacts::read(&model()).unwrap();
        assert_eq!(f.input.name, "x");
        assert_eq!(f.input.type_name(), "i8");
        assert_eq!(f.input.shape_text(), "[?, 1, 8, 8]");
        assert!(f.input.fits(&[1, 1, 8, 8]));
        assert!(!f.input.fits(&[1, 1, 8, 9]));
        assert!(!f.input.fits(&[1, 8, 8]));
        assert_eq!(f.input_quant, Some((0.25, -128)));
        assert_eq!(f.op_names(), ["QLinearConv", "com.microsoft:QLinearAdd"]);
        let missing = f.unsupported(|op| op == "QLinearConv");
        assert_eq!(missing, ["com.microsoft:QLinearAdd (2 nodes)"]);
    }

    #[test]
    fn refuses_graphs_without_one_input() {
        let mut m = model();
        m.graph.as_mut().unwrap().input.clear();
        assert!(GraphFacts::read(&m).unwrap_err().contains("no input"));
        let mut m = model();
        let g = m.graph.as_mut().unwrap();
        g.input.push(value("x2", ONNX_INT8, &[Some(1)]));
        assert!(GraphFacts::read(&m).unwrap_err().contains("2 inputs"));
        assert!(
            GraphFacts::read(&pb::ModelProto::default())
                .unwrap_err()
                .contains("no graph")
        );
    }
}
