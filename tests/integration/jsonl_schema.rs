//! docs/jsonl.schema.json is what `--jsonl` writes: real runs' records,
//! of every kind these runs make, are checked against it with a small
//! validator of the JSON Schema keywords the file uses (type, enum, const,
//! required, properties, minimum, allOf, if/then). A record the schema
//! does not describe, or a schema the records do not follow, fails here.

use serde_json::Value;

use crate::common::{jsonl_all, root, run};

/// Where `value` breaks `schema` (empty: it conforms).
fn violations(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(s) = schema.as_object() else {
        return out;
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            out.push(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        out.push(format!("{at}: {value} is not {c}"));
    }
    if let (Some(min), Some(v)) = (s.get("minimum").and_then(Value::as_f64), value.as_f64())
        && v < min
    {
        out.push(format!("{at}: {v} < {min}"));
    }
    if let Some(obj) = value.as_object() {
        if let Some(Value::Array(required)) = s.get("required") {
            for k in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    out.push(format!("{at}: no '{k}'"));
                }
            }
        }
        if let Some(Value::Object(props)) = s.get("properties") {
            for (k, sub) in props {
                if let Some(v) = obj.get(k) {
                    out.extend(violations(sub, v, &format!("{at}.{k}")));
                }
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            out.extend(violations(sub, value, at));
        }
    }
    if let Some(cond) = s.get("if")
        && violations(cond, value, at).is_empty()
        && let Some(then) = s.get("then")
    {
        out.extend(violations(then, value, at));
    }
    out
}

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("docs/jsonl.schema.json")).unwrap())
        .unwrap()
}

#[test]
fn the_validator_catches_what_the_schema_forbids() {
    let s = schema();
    let ok = serde_json::json!({"status": "stall", "utc": "x", "reason": "r", "waited_s": 5.0});
    assert!(violations(&s, &ok, "").is_empty());
    for bad in [
        serde_json::json!({"status": "stall", "utc": "x", "reason": "r"}),
        serde_json::json!({"status": "stalled", "utc": "x"}),
        serde_json::json!({"status": "stall", "reason": "r", "waited_s": 5.0}),
        serde_json::json!({"status": "stall", "utc": "x", "reason": "r", "waited_s": -1.0}),
        serde_json::json!({"status": "button", "utc": "x", "seq": 1, "button": "power", "effect": "e"}),
    ] {
        assert!(!violations(&s, &bad, "").is_empty(), "{bad}");
    }
}

/// An ultrasound run with a rehearsed probe lift (alarm raised and
/// cleared) and rehearsed model failures, and an X-ray folder run with a
/// radiograph answered and a CT slice refused: every record conforms.
#[test]
fn real_runs_follow_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let mut seen = std::collections::BTreeSet::new();
    let mut check = |log: &std::path::Path| {
        for (i, r) in jsonl_all(log).iter().enumerate() {
            let v = violations(&s, r, &format!("line {}", i + 1));
            assert!(v.is_empty(), "{}: {v:?}\n{r}", log.display());
            seen.insert(r["status"].as_str().unwrap().to_string());
        }
    };
    let us = dir.path().join("us.jsonl");
    let cine = root().join("assets/demo");
    let echo = std::fs::read_dir(&cine)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("echo"))
        .expect("the demo echo cine");
    let (code, _, err) = run(&[
        "run",
        "--mode",
        "ultrasound",
        "--source",
        &format!("dicom:{}", echo.display()),
        "--loop",
        "--frames",
        "150",
        "--inject",
        "blank@75+20",
        "--model-faults",
        "fail@30+2",
        "--jsonl",
        us.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    check(&us);
    // A rehearsal: every record says so; a real run's records do not.
    assert!(jsonl_all(&us).iter().all(|r| r["rehearsal"] == true));
    let pictures = dir.path().join("pictures");
    std::fs::create_dir(&pictures).unwrap();
    std::fs::copy(
        root().join("assets/demo/chest_cr.dcm"),
        pictures.join("a.dcm"),
    )
    .unwrap();
    image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4) ^ (y * 5)) as u8]))
        .save(pictures.join("b.png"))
        .unwrap();
    let xr = dir.path().join("xr.jsonl");
    let (code, _, err) = run(&[
        "run",
        "--mode",
        "xray",
        "--source",
        &format!("images:{}", pictures.display()),
        "--jsonl",
        xr.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    check(&xr);
    assert!(jsonl_all(&xr).iter().all(|r| r.get("rehearsal").is_none()));
    for status in [
        "run_start",
        "run_end",
        "processed",
        "refused",
        "ai_unavailable",
        "alarm_raised",
        "alarm_cleared",
    ] {
        assert!(
            seen.contains(status),
            "no '{status}' record in these runs: {seen:?}"
        );
    }
}
