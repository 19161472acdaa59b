//! A serde `Deserializer` over a [`Node`] tree that reports errors with the file, line, column
//! and dotted key of the value (or key) at fault, and enforces the rules for secrets.

use std::cell::RefCell;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use super::de_error::DeError;
use super::{ConfigError, ConfigWarning, Key, Node, NodeKind, Source, push_index, push_key};
use crate::secret::SECRET_NEWTYPE;
use crate::value::SECRET_MARKER;

/// Deserializes `T` from `node`; key paths in errors and warnings start with `key_prefix`
/// (e.g. `config`). Also returns warnings, such as secrets stored in plaintext.
pub fn from_node<T: DeserializeOwned>(node: &Node, key_prefix: &str) -> Result<(T, Vec<ConfigWarning>), ConfigError> {
    let ctx = Ctx::default();
    let de = NodeDe { node, path: key_prefix.to_string(), ctx: &ctx, secret: false };
    match T::deserialize(de) {
        Ok(value) => Ok((value, ctx.warnings.into_inner())),
        Err(e) => Err(e.locate(node, &node.source, key_prefix, false).into_config_error()),
    }
}

#[derive(Default)]
struct Ctx {
    warnings: RefCell<Vec<ConfigWarning>>,
}

fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.kind {
        NodeKind::Null => Unexpected::Unit,
        NodeKind::Bool(b) => Unexpected::Bool(*b),
        NodeKind::Integer(i) => Unexpected::Signed(*i),
        NodeKind::Float(f) => Unexpected::Float(*f),
        NodeKind::String(s) => Unexpected::Str(s),
        NodeKind::Seq(_) => Unexpected::Seq,
        NodeKind::Map(_) => Unexpected::Map,
        NodeKind::Secure(_) | NodeKind::Secret(_) => Unexpected::Other("a secret"),
    }
}

/// Deserializer over one node.
struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    ctx: &'a Ctx,
    /// Inside a secret: values must not appear in messages.
    secret: bool,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, path: String) -> NodeDe<'a> {
        NodeDe { node, path, ctx: self.ctx, secret: self.secret }
    }

    fn locate(&self, e: DeError) -> DeError {
        e.locate(self.node, &self.node.source, &self.path, self.secret)
    }

    /// Runs `seed` on this node; errors raised after the node was read (e.g. by a custom
    /// `Deserialize` impl validating the value) still get this node's location.
    fn run<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        let (node, path, secret) = (self.node, self.path.clone(), self.secret);
        seed.deserialize(self).map_err(|e| e.locate(node, &node.source, &path, secret))
    }

    fn error(&self, message: String) -> DeError {
        self.locate(DeError::new(message))
    }

    fn not_decrypted(&self) -> DeError {
        self.error("secret value was not decrypted".into())
            .with_help("secure values are decrypted with the stack's key before the program reads them".into())
    }

    /// Refuses to read a secret as a plain value; `hint` names the type the program wants.
    fn guard(&self, hint: &str) -> Result<(), DeError> {
        match &self.node.kind {
            NodeKind::Secret(_) => Err(self
                .error(format!("`{}` is a secret; the program must read it as Secret<{hint}>", self.path))
                .with_help("declare the field with the type `Secret<...>` so the value stays masked and encrypted".into())),
            NodeKind::Secure(_) => Err(self.not_decrypted()),
            _ => Ok(()),
        }
    }

    /// Visits the node by its own type (the `deserialize_any` behaviour).
    fn visit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Integer(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::String(s) => visitor.visit_borrowed_str(s),
            NodeKind::Seq(items) => {
                let mut access = SeqAccess { de: &self, items, index: 0 };
                visitor.visit_seq(&mut access).and_then(|value| access.end().map(|()| value))
            }
            NodeKind::Map(entries) => {
                let mut access = MapAccess { de: &self, entries, index: 0 };
                visitor.visit_map(&mut access).and_then(|value| access.end().map(|()| value))
            }
            NodeKind::Secure(_) => return Err(self.not_decrypted()),
            NodeKind::Secret(inner) => {
                let inner = NodeDe { node: inner, path: self.path.clone(), ctx: self.ctx, secret: true };
                visitor.visit_map(SecretMarker { inner: Some(inner) })
            }
        };
        result.map_err(|e| self.locate(e))
    }
}

macro_rules! guarded {
    ($($method:ident => $hint:expr,)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.guard($hint)?;
            self.visit(visitor)
        }
    )*};
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit(visitor)
    }

    guarded! {
        deserialize_bool => "bool",
        deserialize_i8 => "i8",
        deserialize_i16 => "i16",
        deserialize_i32 => "i32",
        deserialize_i64 => "i64",
        deserialize_i128 => "i128",
        deserialize_u8 => "u8",
        deserialize_u16 => "u16",
        deserialize_u32 => "u32",
        deserialize_u64 => "u64",
        deserialize_u128 => "u128",
        deserialize_f32 => "f32",
        deserialize_f64 => "f64",
        deserialize_char => "char",
        deserialize_str => "String",
        deserialize_string => "String",
        deserialize_bytes => "...",
        deserialize_byte_buf => "...",
        deserialize_unit => "()",
        deserialize_seq => "Vec<...>",
        deserialize_map => "...",
        deserialize_identifier => "...",
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path, secret) = (self.node, self.path.clone(), self.secret);
        let result = match node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        };
        result.map_err(|e| e.locate(node, &node.source, &path, secret))
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.guard("()")?;
        self.visit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(self, name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        let (node, path, secret) = (self.node, self.path.clone(), self.secret);
        let result = if name == SECRET_NEWTYPE {
            match &node.kind {
                NodeKind::Secure(_) => return Err(self.not_decrypted()),
                NodeKind::Secret(inner) => {
                    visitor.visit_newtype_struct(NodeDe { node: inner, path: path.clone(), ctx: self.ctx, secret: true })
                }
                kind => {
                    if !matches!(kind, NodeKind::Null) {
                        self.ctx.warnings.borrow_mut().push(ConfigWarning {
                            location: node.source.clone(),
                            key: path.clone(),
                            message: format!(
                                "this key holds a secret but is stored in plaintext; encrypt it with `berth config set <stack> {} <value> --secret`",
                                path.strip_prefix("config.").unwrap_or(&path)
                            ),
                        });
                    }
                    visitor.visit_newtype_struct(NodeDe { secret: true, ..self })
                }
            }
        } else {
            visitor.visit_newtype_struct(self)
        };
        result.map_err(|e| e.locate(node, &node.source, &path, secret || name == SECRET_NEWTYPE))
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.guard("(...)")?;
        self.visit(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(self, name: &'static str, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.guard(name)?;
        self.visit(visitor)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.guard(name)?;
        match self.node.kind {
            NodeKind::Map(_) => self.visit(visitor),
            _ => Err(self.locate(de::Error::invalid_type(unexpected(self.node), &visitor))),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.guard(name)?;
        let result = match &self.node.kind {
            NodeKind::String(variant) => {
                let access = EnumAccess { name: variant, name_source: &self.node.source, value: None, de: &self };
                visitor.visit_enum(access)
            }
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                let access = EnumAccess { name: &key.name, name_source: &key.source, value: Some(value), de: &self };
                visitor.visit_enum(access)
            }
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'s, 'a> {
    de: &'s NodeDe<'a>,
    items: &'a [Node],
    index: usize,
}

impl SeqAccess<'_, '_> {
    fn end(&self) -> Result<(), DeError> {
        if self.index < self.items.len() {
            return Err(de::Error::invalid_length(self.items.len(), &format!("{} elements", self.index).as_str()));
        }
        Ok(())
    }
}

impl<'a> de::SeqAccess<'a> for SeqAccess<'_, 'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        let de = self.de.child(item, push_index(&self.de.path, self.index));
        self.index += 1;
        de.run(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapAccess<'s, 'a> {
    de: &'s NodeDe<'a>,
    entries: &'a [(Key, Node)],
    index: usize,
}

impl MapAccess<'_, '_> {
    fn end(&self) -> Result<(), DeError> {
        if self.index < self.entries.len() {
            return Err(de::Error::invalid_length(self.entries.len(), &format!("{} entries", self.index).as_str()));
        }
        Ok(())
    }
}

impl<'a> de::MapAccess<'a> for MapAccess<'_, 'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, _)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let path = push_key(&self.de.path, &key.name);
        seed.deserialize(KeyDe { name: &key.name, source: &key.source, path: &path, secret: self.de.secret }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.entries.get(self.index) else {
            return Err(self.de.error("internal error: a map value was read before its key".into()));
        };
        self.index += 1;
        self.de.child(value, push_key(&self.de.path, &key.name)).run(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

/// `deserialize_any` on a secret: the one-entry map `{SECRET_MARKER: value}`.
struct SecretMarker<'a> {
    inner: Option<NodeDe<'a>>,
}

impl<'a> de::MapAccess<'a> for SecretMarker<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.inner {
            Some(_) => seed.deserialize(SECRET_MARKER.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.inner.take() {
            Some(inner) => inner.run(seed),
            None => Err(DeError::new("internal error: a secret was read twice".into())),
        }
    }
}

/// Deserializer for a map key or an enum variant name: a string, also readable as a number or
/// boolean (for maps with such keys).
#[derive(Clone, Copy)]
struct KeyDe<'s> {
    name: &'s str,
    source: &'s Source,
    path: &'s str,
    secret: bool,
}

impl KeyDe<'_> {
    fn locate(&self, e: DeError) -> DeError {
        let node = Node::new(NodeKind::String(self.name.to_string()), self.source.clone());
        e.locate(&node, self.source, self.path, self.secret)
    }
}

macro_rules! key_scalar {
    ($($method:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let result = match super::yaml::resolve_plain(self.name) {
                NodeKind::Integer(i) => visitor.visit_i64(i),
                NodeKind::Float(f) => visitor.visit_f64(f),
                NodeKind::Bool(b) => visitor.visit_bool(b),
                _ => visitor.visit_str(self.name),
            };
            result.map_err(|e| self.locate(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.name).map_err(|e| self.locate(e))
    }

    key_scalar! {
        deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64, deserialize_i128,
        deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64, deserialize_u128, deserialize_f32, deserialize_f64,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self).map_err(|e| self.locate(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self).map_err(|e| self.locate(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let access: de::value::StrDeserializer<'_, DeError> = self.name.into_deserializer();
        visitor.visit_enum(access).map_err(|e| self.locate(e))
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// Enum from a string (unit variant) or a single-key map (`{variant: value}`).
struct EnumAccess<'s, 'a> {
    name: &'a str,
    name_source: &'a Source,
    value: Option<&'a Node>,
    de: &'s NodeDe<'a>,
}

impl<'s, 'a> de::EnumAccess<'a> for EnumAccess<'s, 'a> {
    type Error = DeError;
    type Variant = VariantAccess<'s, 'a>;

    fn variant_seed<V: DeserializeSeed<'a>>(self, seed: V) -> Result<(V::Value, Self::Variant), DeError> {
        let key = KeyDe { name: self.name, source: self.name_source, path: &self.de.path, secret: self.de.secret };
        let variant = seed.deserialize(key)?;
        Ok((variant, VariantAccess { name: self.name, value: self.value, de: self.de }))
    }
}

struct VariantAccess<'s, 'a> {
    name: &'a str,
    value: Option<&'a Node>,
    de: &'s NodeDe<'a>,
}

impl<'a> VariantAccess<'_, 'a> {
    /// The variant's value; `form` shows how to write it when it is missing.
    fn value_de(&self, form: &str) -> Result<NodeDe<'a>, DeError> {
        match self.value {
            Some(value) => Ok(self.de.child(value, push_key(&self.de.path, self.name))),
            None => {
                let mut e = DeError::new(format!("variant `{}` needs a value; write it as `{{{}: {form}}}`", self.name, self.name));
                e.redacted = Some("this variant needs a value".into());
                Err(e)
            }
        }
    }
}

impl<'a> de::VariantAccess<'a> for VariantAccess<'_, 'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(value) if matches!(value.kind, NodeKind::Null) => Ok(()),
            Some(value) => {
                let de = self.de.child(value, push_key(&self.de.path, self.name));
                Err(de.locate(de::Error::invalid_type(unexpected(value), &"nothing (a unit variant)")))
            }
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        self.value_de("<value>")?.run(seed)
    }

    fn tuple_variant<V: Visitor<'a>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self.value_de("[...]")?, len, visitor)
    }

    fn struct_variant<V: Visitor<'a>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self.value_de("{...}")?, "", fields, visitor)
    }
}
