//! Strict reading of the JSON the gateway accepts: an object that names a key
//! twice is refused at any depth (serde_json alone keeps the last one, so
//! `{"type":"ping","type":"cancel"}` would cancel). Values are walked as raw
//! text, so no number is converted, refused or rounded just for being large.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::HashSet;

/// Deepest nesting read, as serde_json's own default.
pub const MAX_DEPTH: usize = 128;

/// Why a text is not strict JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictJsonError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// An object names a key twice.
    #[error("key {0:?} appears twice in one object; send each key once")]
    DuplicateKey(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than 128 levels")]
    TooDeep,
}

/// Checks that `text` is one JSON value with no duplicate key in any object.
pub fn check(text: &str) -> Result<(), StrictJsonError> {
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| StrictJsonError::Syntax(e.to_string()))?;
    walk(raw, 1)
}

/// [`check`] for bytes, which must be UTF-8.
pub fn check_bytes(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| StrictJsonError::Syntax(format!("not UTF-8: {e}")))?;
    check(text)
}

/// Walks one value already known to be valid JSON.
fn walk(raw: &RawValue, depth: usize) -> Result<(), StrictJsonError> {
    let text = raw.get();
    if !text.starts_with(['{', '[']) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(StrictJsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Container { depth }
        .deserialize(&mut de)
        .map_err(|e| StrictJsonError::Syntax(e.to_string()))?
}

/// Visits one object or array; what it finds wrong is its value, so that the
/// rest is still consumed and serde_json sees a complete value.
struct Container {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Container {
    type Value = Result<(), StrictJsonError>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Container {
    type Value = Result<(), StrictJsonError>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        let mut verdict = Ok(());
        while let Some(key) = map.next_key::<String>()? {
            if verdict.is_err() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            if seen.contains(&key) {
                verdict = Err(StrictJsonError::DuplicateKey(
                    key.chars().take(64).collect(),
                ));
            } else {
                verdict = walk(value, self.depth + 1);
                seen.insert(key);
            }
        }
        Ok(verdict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut verdict = Ok(());
        while let Some(value) = seq.next_element::<&'de RawValue>()? {
            if verdict.is_ok() {
                verdict = walk(value, self.depth + 1);
            }
        }
        Ok(verdict)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(
            check(r#"{"type":"ping","type":"cancel"}"#),
            Err(StrictJsonError::DuplicateKey("type".into()))
        );
        assert_eq!(
            check(r#"[{"a":{"b":[1,{"c":1,"c":2}]}}]"#),
            Err(StrictJsonError::DuplicateKey("c".into()))
        );
        // Escapes are decoded before keys are compared.
        assert_eq!(
            check(r#"{"type":1,"\u0074ype":2}"#),
            Err(StrictJsonError::DuplicateKey("type".into()))
        );
        assert_eq!(check(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#), Ok(()));
    }

    #[test]
    fn numbers_of_any_size_pass() {
        assert_eq!(
            check(r#"{"n":1e400,"m":[-1e999,123456789012345678901234567890]}"#),
            Ok(())
        );
    }

    #[test]
    fn syntax_and_depth() {
        assert!(matches!(check("{"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(
            check_bytes(b"\xff"),
            Err(StrictJsonError::Syntax(_))
        ));
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(&at_limit), Ok(()));
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(check(&over).is_err());
    }
}
