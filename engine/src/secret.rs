//! `Secret<T>`: a field whose value must never be shown and is encrypted in state.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::SECRET_MARKER;

/// The newtype name `Secret<T>` deserializes through, so a deserializer that knows about
/// secrets (stack configuration) can tell a secret is expected.
pub const SECRET_NEWTYPE: &str = "$berth::Secret";

/// A value that is encrypted in state and shown as `[secret]` everywhere.
///
/// Serializes as the marker object `{"$berth.secret": value}`, which the engine turns into
/// [`Value::Secret`](crate::Value::Secret); deserializes from the plain value.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The plain value. Named so that every use is easy to find in review.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::value::SECRET_MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::value::SECRET_MASK)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(SECRET_MARKER, &self.0)?;
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for SecretVisitor<T> {
            type Value = Secret<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret value")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                T::deserialize(d).map(Secret)
            }
        }
        deserializer.deserialize_newtype_struct(SECRET_NEWTYPE, SecretVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn serializes_to_marker_and_reads_plain() {
        let s = Secret::new("hunter2".to_string());
        let json = serde_json::to_value(&s).unwrap();
        assert!(Value::from_json(json).is_secret());
        let back: Secret<String> = serde_json::from_value(serde_json::json!("hunter2")).unwrap();
        assert_eq!(back.expose(), "hunter2");
        assert_eq!(format!("{back:?} {back}"), "[secret] [secret]");
    }
}
