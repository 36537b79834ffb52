//! Request bodies as JSON, read strictly: a key named twice in one object
//! is refused. A lenient parser keeps the last value, so a body could say
//! one thing to a reader that keeps the first (a log, a proxy, a person
//! reviewing it) and another to this service: two `path` keys in one PATCH
//! operation would act on the second, unseen.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON object: a resource, or a complex attribute's value.
pub type Object = Map<String, Value>;

/// Parse `bytes` as one JSON value, refusing duplicate keys at any depth.
/// The error is serde_json's, with line and column.
pub fn from_slice_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de.deserialize_any(StrictVisitor)?;
    de.end()?;
    Ok(value)
}

/// [`from_slice_strict`] for text.
pub fn from_str_strict(text: &str) -> Result<Value, serde_json::Error> {
    from_slice_strict(text.as_bytes())
}

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key '{}' appears twice in one object",
                    printable(&key)
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A key as it may be quoted in a message: at most 64 characters, controls escaped.
fn printable(key: &str) -> String {
    key.chars().take(64).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_every_depth() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"Operations":[{"op":"replace","path":"userName","path":"active","value":true}]}"#,
            r#"{"a":{"b":{"c":1,"c":1}}}"#,
            r#"[{"x":1},{"y":2,"y":3}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let e = from_str_strict(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("appears twice"), "{text}: {e}");
        }
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        for text in [
            r#"{"a":1,"A":2,"b":[1,2.5,-3,true,null,"x"],"c":{"a":{}},"d":[]}"#,
            r#"  "text"  "#,
            "12345678901234567890",
            "-0.0",
            r#"{"e":"\u00e9\n"}"#,
        ] {
            let strict = from_str_strict(text).unwrap_or_else(|e| unreachable!("{text}: {e}"));
            let lenient: Value = serde_json::from_str(text).unwrap_or_else(|e| unreachable!("{text}: {e}"));
            assert_eq!(strict, lenient, "{text}");
        }
        assert!(from_str_strict(r#"{"a":1} x"#).is_err(), "trailing text");
        assert!(from_str_strict(&"[".repeat(200)).is_err(), "nesting is bounded");
    }
}
