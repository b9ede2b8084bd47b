//! Stable JSON: every document kiln writes (configs, manifests, indexes) goes
//! through [`canonical`], which writes compact JSON with object keys sorted,
//! whatever map type the serialized value used. Image digests therefore
//! never depend on hash-map iteration order or on serde_json's features.

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` as compact JSON with sorted object keys.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("kiln's documents are always serializable");
    let mut out = Vec::new();
    write(&value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).expect("strings serialize"));
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).expect("scalars serialize")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sorts_keys_at_every_level() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "mid"] {
            m.insert(
                k,
                serde_json::json!({"b": 1, "a": [ {"y": 1, "x": "é\""} ]}),
            );
        }
        let s = String::from_utf8(canonical(&m)).unwrap();
        assert_eq!(
            s,
            r#"{"alpha":{"a":[{"x":"é\"","y":1}],"b":1},"mid":{"a":[{"x":"é\"","y":1}],"b":1},"zeta":{"a":[{"x":"é\"","y":1}],"b":1}}"#
        );
    }
}
