//! The small fixture: metadata, tensor infos and de-quantized values as gguf-py reads them.

use cllm4rec_pipe::gguf::{GgmlType, Gguf, GgufError, Value};
use serde_json::Value as Json;

use crate::{assert_same_values, small_gguf, small_json};

/// The type chain of a value as gguf-py lists it (`["array", "array", "int32"]`, following
/// the first element of nested arrays).
fn type_chain(v: &Value) -> Vec<&'static str> {
    let mut types = vec![v.type_name()];
    let mut cur = v;
    while let Some(first) = cur.as_array().and_then(|a| a.first()) {
        types.push(first.type_name());
        cur = first;
    }
    types
}

/// The scalars of a value, nested arrays flattened (as gguf-py's reader returns them).
fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|x| flatten(x, out)),
        v => out.push(v),
    }
}

/// Whether scalar `v` equals JSON `e`. Integers, bools and strings exactly; a float32 after
/// casting the JSON number to f32 (exact: serde_json's parse is within an ulp of the f64
/// Python wrote, which rounds back to the same f32); a float64 within 1e-15 relative (the
/// same parse error, since serde_json is built without `float_roundtrip`).
fn same_scalar(v: &Value, e: &Json) -> bool {
    match v {
        Value::F32(x) => e.as_f64().is_some_and(|e| e as f32 == *x),
        Value::F64(x) => e.as_f64().is_some_and(|e| (e - x).abs() <= 1e-15 * x.abs()),
        Value::Bool(x) => e.as_bool() == Some(*x),
        Value::Str(x) => e.as_str() == Some(x),
        Value::Array(_) => false,
        v => {
            let i = v.as_i128().unwrap();
            e.as_i64().map(i128::from) == Some(i) || e.as_u64().map(i128::from) == Some(i)
        }
    }
}

/// Whether `v` equals `e` with its nesting kept (as the fixture script wrote it; a float32
/// as the f32 nearest to the written number).
fn same_nested(v: &Value, e: &Json) -> bool {
    match (v, e) {
        (Value::Array(items), Json::Array(es)) => {
            items.len() == es.len() && items.iter().zip(es).all(|(v, e)| same_nested(v, e))
        }
        (v, e) => same_scalar(v, e),
    }
}

#[test]
fn header_and_metadata_match_gguf_py() {
    let g = Gguf::open(&small_gguf()).unwrap();
    let r = small_json();
    assert_eq!(u64::from(g.version()), r["version"].as_u64().unwrap());
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.alignment(), r["alignment"].as_u64().unwrap());
    assert_eq!(g.data_offset() as u64, r["data_offset"].as_u64().unwrap());

    let expected = r["metadata"].as_array().unwrap();
    assert_eq!(g.metadata().len(), expected.len());
    let mut checked_written = 0;
    for ((key, value), e) in g.metadata().iter().zip(expected) {
        assert_eq!(key, e["key"].as_str().unwrap(), "keys in file order");
        let e_types: Vec<&str> = (e["types"].as_array().unwrap().iter())
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(type_chain(value), e_types, "`{key}` type");
        let mut scalars = Vec::new();
        flatten(value, &mut scalars);
        let read = match &e["read"] {
            Json::Array(items) => items.clone(),
            item => vec![item.clone()],
        };
        assert_eq!(scalars.len(), read.len(), "`{key}` length");
        for (v, e) in scalars.iter().zip(&read) {
            assert!(same_scalar(v, e), "`{key}`: ours {v}, gguf-py {e}");
        }
        if !e["written"].is_null() {
            assert!(
                same_nested(value, &e["written"]),
                "`{key}`: ours {value:?}, written {}",
                e["written"]
            );
            checked_written += 1;
        }
    }
    assert_eq!(checked_written, 22);
    assert_eq!(
        g.get("test.array_nested"),
        Some(&Value::Array(vec![
            Value::Array(vec![Value::I32(1), Value::I32(2)]),
            Value::Array(vec![Value::I32(3)]),
            Value::Array(vec![Value::I32(4), Value::I32(5), Value::I32(6)]),
        ]))
    );
    assert_eq!(g.get("test.float32"), Some(&Value::F32(0.1)));
    assert_eq!(
        g.get("test.array_float32").unwrap().as_array().unwrap()[2],
        Value::F32(3.0e38)
    );
}

#[test]
fn typed_getters() {
    let g = Gguf::open(&small_gguf()).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "testarch");
    assert_eq!(g.get_u64("test.uint8").unwrap(), 200);
    assert_eq!(
        g.get_u64("test.uint64").unwrap(),
        18_000_000_000_000_000_000
    );
    assert_eq!(g.get_u64("general.alignment").unwrap(), 64);
    assert_eq!(g.get_f64("test.float32").unwrap(), f64::from(0.1f32));
    assert_eq!(g.get_f64("test.float64").unwrap(), -1.0e-300);
    assert_eq!(g.get_f64("test.int16").unwrap(), -30000.0);
    assert_eq!(
        g.get_str_array("test.array_string").unwrap(),
        ["a", "", "Ġthe", "日本"]
    );
    assert_eq!(g.get_array("test.array_bool").unwrap().len(), 3);

    let e = g.get_u64("test.int8").unwrap_err();
    assert!(matches!(e, GgufError::WrongType { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("`test.int8`") && msg.contains("int8 -100"),
        "{msg}"
    );
    assert!(msg.contains("small.gguf"), "{msg}");
    let msg = g.get_str("test.uint8").unwrap_err().to_string();
    assert!(msg.contains("expected a string"), "{msg}");
    let msg = g.get_f64("test.string").unwrap_err().to_string();
    assert!(msg.contains("`test.string`"), "{msg}");
    let msg = g.get_str_array("test.array_int32").unwrap_err().to_string();
    assert!(msg.contains("array of int32 values"), "{msg}");
    let msg = g.get_array("test.bool_true").unwrap_err().to_string();
    assert!(msg.contains("expected an array"), "{msg}");
    let e = g.get_u64("no.such.key").unwrap_err();
    assert!(
        matches!(e, GgufError::MissingKey { ref key, .. } if key == "no.such.key"),
        "{e}"
    );
}

#[test]
fn tensors_dequantize_bit_for_bit_like_gguf_py() {
    let g = Gguf::open(&small_gguf()).unwrap();
    let r = small_json();
    let expected = r["tensors"].as_array().unwrap();
    assert_eq!(g.tensors().len(), expected.len());
    let mut types = Vec::new();
    for (t, e) in g.tensors().iter().zip(expected) {
        let name = e["name"].as_str().unwrap();
        assert_eq!(t.name, name);
        let dims: Vec<usize> = serde_json::from_value(e["dims"].clone()).unwrap();
        assert_eq!(t.dims, dims, "{name}");
        assert_eq!(t.ggml_type.name(), e["type"].as_str().unwrap(), "{name}");
        assert_eq!(
            u64::from(t.ggml_type.id()),
            e["type_id"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(t.offset, e["offset"].as_u64().unwrap(), "{name}");
        assert_eq!(g.tensor(name), Some(t));
        if t.ggml_type == GgmlType::Q5_0 {
            continue; // refused; see `unsupported_type_is_refused_by_name`
        }
        let (shape, values) = g.dequantize(name).unwrap();
        let reversed: Vec<usize> = dims.iter().rev().copied().collect();
        assert_eq!(shape, reversed, "{name}: row-major shape");
        assert_same_values(name, &values, e["values"].as_array().unwrap());
        types.push(t.ggml_type);
    }
    let mut supported = cllm4rec_pipe::gguf::DEQUANTIZABLE.to_vec();
    supported.sort_by_key(|t| t.id());
    types.sort_by_key(|t| t.id());
    assert_eq!(types, supported, "the fixture covers every supported type");
    assert!(g.tensor("missing").is_none());
    let msg = g.dequantize("missing").unwrap_err().to_string();
    assert!(msg.contains("no tensor `missing`"), "{msg}");
}

#[test]
fn unsupported_type_is_refused_by_name() {
    let g = Gguf::open(&small_gguf()).unwrap();
    let e = g.dequantize("t.q5_0").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(
        e,
        GgufError::UnsupportedType {
            ggml_type: GgmlType::Q5_0,
            ..
        }
    ));
    assert!(
        msg.contains("Q5_0 (6)") && msg.contains("`t.q5_0`"),
        "{msg}"
    );
    assert!(msg.contains("small.gguf"), "{msg}");
    // Its raw bytes are still available.
    assert_eq!(g.tensor_bytes("t.q5_0").unwrap().len(), 22);
}
