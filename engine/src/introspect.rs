//! Learning a struct's field names from its `Deserialize` impl, to catch typos in output names
//! when a program registers, instead of at apply time.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

struct FieldsFound(&'static [&'static str]);

#[derive(Debug)]
struct Stop(Option<&'static [&'static str]>);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("introspection")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop(None)
    }
}

struct Probe;

impl<'de> Deserializer<'de> for Probe {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Stop> {
        Err(Stop(Some(FieldsFound(fields).0)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The field names of a struct deserialized with serde derive; `None` for anything else
/// (maps, `serde_json::Value`, flattened structs).
pub fn struct_fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    match T::deserialize(Probe) {
        Err(Stop(fields)) => fields,
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Outputs {
        address: String,
        #[serde(rename = "portNumber")]
        port: u16,
    }

    #[test]
    fn finds_struct_fields() {
        assert_eq!(struct_fields::<Outputs>(), Some(&["address", "portNumber"][..]));
        assert_eq!(struct_fields::<serde_json::Value>(), None);
    }
}
