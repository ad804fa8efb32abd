//! Strict reading of the JSON the gateway accepts: an object that names a key
//! twice is refused at any depth (serde_json alone keeps the last one, so
//! `{"type":"ping","type":"cancel"}` would cancel). One pass, nothing built:
//! linear in the text, whatever its nesting.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;

/// Deepest nesting read (serde_json's own limit).
pub const MAX_DEPTH: usize = 127;

/// Why a text is not strict JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictJsonError {
    /// Not JSON the gateway reads: a syntax error, a number beyond a double's
    /// range (about ±1.8e308), or nesting deeper than [`MAX_DEPTH`].
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// An object names a key twice.
    #[error("key {0:?} appears twice in one object; send each key once")]
    DuplicateKey(String),
}

/// Checks that `text` is one JSON value with no duplicate key in any object.
pub fn check(text: &str) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let verdict = Walk
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| StrictJsonError::Syntax(e.to_string()))?;
    verdict.map_err(StrictJsonError::DuplicateKey)
}

/// [`check`] for bytes, which must be UTF-8.
pub fn check_bytes(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| StrictJsonError::Syntax(format!("not UTF-8: {e}")))?;
    check(text)
}

/// Visits one value. A duplicate key is the visit's result (the first one
/// found, cut to 64 characters) rather than an error, so the rest of the text
/// is still read and a syntax error after it is still reported as such.
struct Walk;

type Verdict = Result<(), String>;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Verdict;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Verdict, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Verdict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Verdict, A::Error> {
        let mut seen = HashSet::new();
        let mut verdict = Ok(());
        while let Some(key) = map.next_key::<String>()? {
            if verdict.is_err() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let inner = map.next_value_seed(Walk)?;
            if seen.contains(&key) {
                verdict = Err(key.chars().take(64).collect());
            } else {
                verdict = inner;
                seen.insert(key);
            }
        }
        Ok(verdict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Verdict, A::Error> {
        let mut verdict = Ok(());
        while let Some(inner) = seq.next_element_seed(Walk)? {
            if verdict.is_ok() {
                verdict = inner;
            }
        }
        Ok(verdict)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Verdict, E> {
        Ok(Ok(()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Verdict, E> {
        Ok(Ok(()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Verdict, E> {
        Ok(Ok(()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Verdict, E> {
        Ok(Ok(()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Verdict, E> {
        Ok(Ok(()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Verdict, E> {
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
    fn numbers_pass_up_to_a_doubles_range() {
        assert_eq!(
            check(r#"{"n":1.7976931348623157e308,"m":[-1e-999,123456789012345678901234567890]}"#),
            Ok(())
        );
        for over in ["1e309", "[-1e400]", r#"{"a":{"b":1e400}}"#] {
            assert!(
                matches!(check(over), Err(StrictJsonError::Syntax(_))),
                "{over}"
            );
        }
    }

    #[test]
    fn syntax_and_depth() {
        assert!(matches!(check("{"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(
            check_bytes(b"\xff"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(matches!(
            check(r#"{"a":1,"a":2} x"#),
            Err(StrictJsonError::Syntax(_))
        ));
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check(&nest(MAX_DEPTH)), Ok(()));
        assert!(matches!(
            check(&nest(MAX_DEPTH + 1)),
            Err(StrictJsonError::Syntax(_))
        ));
        let objects = |n: usize| format!("{}{}", r#"{"a":"#.repeat(n - 1) + "{", "}".repeat(n));
        assert_eq!(check(&objects(MAX_DEPTH)), Ok(()));
        assert!(check(&objects(MAX_DEPTH + 1)).is_err());
    }
}
