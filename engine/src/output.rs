//! Outputs of one resource used as inputs of another, Pulumi-style.
//!
//! An [`Output<T>`] is a lazy expression: a reference to a field of another resource's outputs,
//! optionally transformed by a closure. A stack program puts outputs into [`Input<T>`] fields of a
//! resource's inputs; registering the resource records every reference as a dependency edge. The
//! engine evaluates the expressions twice: at plan time (values of resources not yet created are
//! unknown) and at apply time, the moment the referenced resources have finished.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::urn::Urn;
use crate::value::{OUTPUT_MARKER, Path, UNKNOWN_MARKER, Value};

type Transform = dyn Fn(Vec<serde_json::Value>) -> Result<serde_json::Value, String> + Send + Sync;

/// Which part of a resource's result an output refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputField {
    /// The provider's id for the resource (a bucket name, an instance identifier).
    Id,
    /// A field of the resource's outputs.
    Field(Path),
}

pub(crate) enum Expr {
    Const(Value),
    Ref {
        urn: Urn,
        field: OutputField,
    },
    Apply {
        inputs: Vec<Arc<Expr>>,
        transform: Arc<Transform>,
    },
    Secret(Arc<Expr>),
    /// A mistake found while registering (an output field the type does not have); reported
    /// when the expression is evaluated at plan time.
    Invalid(String),
}

impl Expr {
    fn collect_dependencies(&self, out: &mut BTreeSet<Urn>) {
        match self {
            Expr::Const(_) => {}
            Expr::Ref { urn, .. } => {
                out.insert(urn.clone());
            }
            Expr::Apply { inputs, .. } => inputs.iter().for_each(|e| e.collect_dependencies(out)),
            Expr::Secret(inner) => inner.collect_dependencies(out),
            Expr::Invalid(_) => {}
        }
    }

    fn evaluate(&self, resolver: &dyn Resolver) -> Result<Value, String> {
        match self {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Secret(inner) => Ok(inner.evaluate(resolver)?.into_secret()),
            Expr::Invalid(message) => Err(message.clone()),
            Expr::Ref { urn, field } => Ok(resolver.resolve_field(urn, field).unwrap_or(Value::Unknown)),
            Expr::Apply { inputs, transform } => {
                let mut values = Vec::with_capacity(inputs.len());
                for input in inputs {
                    values.push(input.evaluate(resolver)?);
                }
                if values.iter().any(Value::contains_unknown) {
                    return Ok(Value::Unknown);
                }
                let secret = values.iter().any(Value::contains_secret);
                let json = values.iter().map(Value::to_json_revealed).collect();
                let result = Value::from_json(transform(json)?);
                Ok(if secret { result.into_secret() } else { result })
            }
        }
    }
}

/// Supplies the outputs of other resources when expressions are evaluated.
pub trait Resolver {
    /// The value of one field of a resource's result; `None` when the resource's outputs are
    /// not known yet (it will be created or replaced).
    fn resolve_field(&self, urn: &Urn, field: &OutputField) -> Option<Value>;
}

/// The ids and outputs known so far, by URN.
#[derive(Clone, Debug, Default)]
pub struct KnownOutputs {
    known: std::collections::HashMap<Urn, (Option<String>, Value)>,
}

impl KnownOutputs {
    pub fn new() -> KnownOutputs {
        KnownOutputs::default()
    }

    /// Records what a resource has (after apply, or from state when unchanged).
    pub fn insert(&mut self, urn: Urn, id: Option<String>, outputs: Value) {
        self.known.insert(urn, (id, outputs));
    }

    /// Marks a resource's outputs as unknown (it will be created or replaced).
    pub fn forget(&mut self, urn: &Urn) {
        self.known.remove(urn);
    }

    pub fn get(&self, urn: &Urn) -> Option<&(Option<String>, Value)> {
        self.known.get(urn)
    }

    /// Sets some outputs of a known resource to unknown (an update will change them).
    pub fn mark_unknown(&mut self, urn: &Urn, paths: &[Path]) {
        if let Some((_, outputs)) = self.known.get_mut(urn) {
            for path in paths {
                outputs.set_path(path, Value::Unknown);
            }
        }
    }
}

impl Resolver for KnownOutputs {
    fn resolve_field(&self, urn: &Urn, field: &OutputField) -> Option<Value> {
        let (id, outputs) = self.known.get(urn)?;
        Some(match field {
            OutputField::Id => id.clone().map(Value::String).unwrap_or(Value::Null),
            OutputField::Field(path) => outputs.get_path(path).unwrap_or(Value::Null),
        })
    }
}

impl Resolver for std::sync::Mutex<KnownOutputs> {
    fn resolve_field(&self, urn: &Urn, field: &OutputField) -> Option<Value> {
        self.lock().ok()?.resolve_field(urn, field)
    }
}

/// A value known after another resource is applied. Cheap to clone.
pub struct Output<T> {
    expr: Arc<Expr>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Output { expr: self.expr.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut deps = BTreeSet::new();
        self.expr.collect_dependencies(&mut deps);
        write!(f, "Output(depends on {:?})", deps)
    }
}

impl<T> Output<T> {
    fn from_expr(expr: Expr) -> Self {
        Output { expr: Arc::new(expr), _type: PhantomData }
    }

    pub(crate) fn reference(urn: Urn, field: OutputField) -> Self {
        Output::from_expr(Expr::Ref { urn, field })
    }

    /// An output whose value is already known (or `Value::Unknown`), e.g. another stack's.
    pub(crate) fn constant(value: Value) -> Self {
        Output::from_expr(Expr::Const(value))
    }

    pub(crate) fn invalid(message: String) -> Self {
        Output::from_expr(Expr::Invalid(message))
    }

    /// The resources this output depends on.
    pub fn dependencies(&self) -> BTreeSet<Urn> {
        let mut deps = BTreeSet::new();
        self.expr.collect_dependencies(&mut deps);
        deps
    }

    /// The same value, marked secret: encrypted in state and masked in all output.
    pub fn secret(&self) -> Output<T> {
        Output::from_expr(Expr::Secret(self.expr.clone()))
    }

    /// Reinterprets the output as another type with the same JSON shape.
    pub fn cast<U>(&self) -> Output<U> {
        Output { expr: self.expr.clone(), _type: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Output<T> {
    /// An output whose value is known now.
    pub fn known(value: T) -> Output<T> {
        let json = serde_json::to_value(&value).unwrap_or(serde_json::Value::Null);
        Output::from_expr(Expr::Const(Value::from_json(json)))
    }

    /// Transforms the value once known. The result is secret if the input was.
    pub fn map<U, F>(&self, f: F) -> Output<U>
    where
        U: Serialize + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.try_map(move |t| Ok(f(t)))
    }

    /// Like [`map`](Self::map), for transforms that can fail; the error names the resource
    /// whose inputs needed the value.
    pub fn try_map<U, F>(&self, f: F) -> Output<U>
    where
        U: Serialize + 'static,
        F: Fn(T) -> Result<U, String> + Send + Sync + 'static,
    {
        let transform = move |mut args: Vec<serde_json::Value>| {
            let arg = args.pop().unwrap_or(serde_json::Value::Null);
            let t: T = serde_json::from_value(arg).map_err(|e| format!("output has an unexpected shape: {e}"))?;
            serde_json::to_value(f(t)?).map_err(|e| e.to_string())
        };
        Output::from_expr(Expr::Apply { inputs: vec![self.expr.clone()], transform: Arc::new(transform) })
    }

    /// Combines two outputs into one known when both are.
    pub fn zip<U: Serialize + DeserializeOwned + 'static>(&self, other: &Output<U>) -> Output<(T, U)> {
        let transform = |args: Vec<serde_json::Value>| Ok(serde_json::Value::Array(args));
        Output::from_expr(Expr::Apply { inputs: vec![self.expr.clone(), other.expr.clone()], transform: Arc::new(transform) })
    }

    /// Combines many outputs of one type into a list known when all are.
    pub fn all(outputs: &[Output<T>]) -> Output<Vec<T>> {
        let transform = |args: Vec<serde_json::Value>| Ok(serde_json::Value::Array(args));
        Output::from_expr(Expr::Apply { inputs: outputs.iter().map(|o| o.expr.clone()).collect(), transform: Arc::new(transform) })
    }
}

/// Builds a string output from a format string and outputs, e.g.
/// `format_output!("mysql://{}:{}", address, port)`. Only `{}` placeholders; `{{` and `}}`
/// escape braces as in `format!`.
#[macro_export]
macro_rules! format_output {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        let parts: ::std::vec::Vec<$crate::Output<::serde_json::Value>> = vec![$($arg.cast::<::serde_json::Value>()),*];
        $crate::Output::all(&parts).map(|values: ::std::vec::Vec<::serde_json::Value>| {
            let mut it = values.into_iter().map(|v| match v {
                ::serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
            $crate::output::__format_with($fmt, &mut it)
        })
    }};
}

#[doc(hidden)]
/// `{}` takes the next value; `{{` and `}}` are literal braces, as in `format!` (so a Vault
/// template's `{{username}}` is written `{{{{username}}}}`, exactly as `format!` would need).
pub fn __format_with(template: &str, args: &mut dyn Iterator<Item = String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                chars.next();
                out.push(c);
            }
            ('{', Some('}')) => {
                chars.next();
                out.push_str(&args.next().unwrap_or_default());
            }
            _ => out.push(c),
        }
    }
    out
}

thread_local! {
    static CAPTURE: RefCell<Option<Vec<Arc<Expr>>>> = const { RefCell::new(None) };
}

impl<T> Serialize for Output<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = CAPTURE.with(|c| {
            c.borrow_mut().as_mut().map(|exprs| {
                exprs.push(self.expr.clone());
                exprs.len() - 1
            })
        });
        match index {
            Some(index) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(OUTPUT_MARKER, &index)?;
                map.end()
            }
            None => Err(serde::ser::Error::custom(
                "an Output can only be serialized while registering a resource; use Output::map to transform it",
            )),
        }
    }
}

/// A resource input: a plain value, another resource's output, or (seen by providers at plan
/// time only) a value not yet known.
#[derive(Clone)]
pub enum Input<T> {
    Value(T),
    Output(Output<T>),
    Unknown,
}

/// A provider asked for an input that is not known yet. At apply time every input is known;
/// seeing this there is a bug in the engine.
#[derive(Debug, thiserror::Error)]
#[error("input value is not known yet (it depends on a resource that has not been applied)")]
pub struct UnknownInput;

impl<T> Input<T> {
    /// The value, if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Input::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The value, or an error if it is not known yet.
    pub fn value(&self) -> Result<&T, UnknownInput> {
        self.known().ok_or(UnknownInput)
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Input::Value(_))
    }
}

impl<T: fmt::Debug> fmt::Debug for Input<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Value(v) => v.fmt(f),
            Input::Output(o) => o.fmt(f),
            Input::Unknown => f.write_str(crate::value::UNKNOWN_TEXT),
        }
    }
}

impl<T: PartialEq> PartialEq for Input<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Input::Value(a), Input::Value(b)) => a == b,
            (Input::Unknown, Input::Unknown) => true,
            _ => false,
        }
    }
}

impl<T: Default> Default for Input<T> {
    fn default() -> Self {
        Input::Value(T::default())
    }
}

impl<T> From<T> for Input<T> {
    fn from(value: T) -> Self {
        Input::Value(value)
    }
}

impl From<&str> for Input<String> {
    fn from(value: &str) -> Self {
        Input::Value(value.to_string())
    }
}

impl<T> From<Output<T>> for Input<T> {
    fn from(output: Output<T>) -> Self {
        Input::Output(output)
    }
}

impl<T> From<&Output<T>> for Input<T> {
    fn from(output: &Output<T>) -> Self {
        Input::Output(output.clone())
    }
}

impl<T: Serialize> Serialize for Input<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Value(v) => v.serialize(serializer),
            Input::Output(o) => o.serialize(serializer),
            Input::Unknown => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(UNKNOWN_MARKER, &true)?;
                map.end()
            }
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Input<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        if let serde_json::Value::Object(map) = &json
            && map.len() == 1
            && map.contains_key(UNKNOWN_MARKER)
        {
            return Ok(Input::Unknown);
        }
        T::deserialize(json).map(Input::Value).map_err(serde::de::Error::custom)
    }
}

/// A resource's inputs as the program wrote them: a value tree with holes where outputs of other
/// resources go.
#[derive(Clone, Default)]
pub struct Template {
    value: Value,
    exprs: Vec<Arc<Expr>>,
}

/// Failure to turn a template into values (a transform closure returned an error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

impl Template {
    /// Serializes typed inputs, capturing the outputs they reference.
    pub fn capture<T: Serialize>(inputs: &T) -> Result<Template, serde_json::Error> {
        let previous = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
        let json = serde_json::to_value(inputs);
        let exprs = CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous)).unwrap_or_default();
        Ok(Template { value: Value::from_json(json?), exprs })
    }

    /// A template with no references.
    pub fn literal(value: Value) -> Template {
        Template { value, exprs: Vec::new() }
    }

    /// Every resource this template references.
    pub fn dependencies(&self) -> BTreeSet<Urn> {
        let mut deps = BTreeSet::new();
        for expr in &self.exprs {
            expr.collect_dependencies(&mut deps);
        }
        deps
    }

    pub fn has_references(&self) -> bool {
        !self.exprs.is_empty()
    }

    /// The values, with every reference replaced by what the resolver knows (or `Unknown`).
    pub fn resolve(&self, resolver: &dyn Resolver) -> Result<Value, ResolveError> {
        if self.exprs.is_empty() {
            return Ok(self.value.clone());
        }
        let mut evaluated: Vec<Option<Value>> = vec![None; self.exprs.len()];
        self.substitute(&self.value, resolver, &mut evaluated)
    }

    fn substitute(&self, value: &Value, resolver: &dyn Resolver, evaluated: &mut [Option<Value>]) -> Result<Value, ResolveError> {
        Ok(match value {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some(Value::Number(n)) = map.get(OUTPUT_MARKER)
                {
                    let index = n.as_u64().unwrap_or(u64::MAX) as usize;
                    let expr = self.exprs.get(index).ok_or_else(|| ResolveError(format!("dangling output reference {index}")))?;
                    if let Some(done) = &evaluated[index] {
                        return Ok(done.clone());
                    }
                    let result = expr.evaluate(resolver).map_err(ResolveError)?;
                    evaluated[index] = Some(result.clone());
                    return Ok(result);
                }
                let mut out = std::collections::BTreeMap::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.substitute(v, resolver, evaluated)?);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.substitute(v, resolver, evaluated)).collect::<Result<_, _>>()?),
            Value::Secret(inner) => self.substitute(inner, resolver, evaluated)?.into_secret(),
            other => other.clone(),
        })
    }
}

/// Evaluates a single output (stack exports use this).
pub(crate) fn evaluate_output<T>(output: &Output<T>, resolver: &dyn Resolver) -> Result<Value, ResolveError> {
    output.expr.evaluate(resolver).map_err(ResolveError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::HashMap;

    #[test]
    fn format_strings_escape_braces_as_format_does() {
        let args = || vec!["db.example".to_string(), "3306".to_string()].into_iter();
        let template = "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/";
        assert_eq!(__format_with(template, &mut args()), format!("{{{{username}}}}:{{{{password}}}}@tcp({}:{})/", "db.example", "3306"));
        assert_eq!(__format_with(template, &mut args()), "{{username}}:{{password}}@tcp(db.example:3306)/");
        assert_eq!(__format_with("{} and {}", &mut args()), "db.example and 3306");
        assert_eq!(__format_with("a } b {", &mut args()), "a } b {", "lone braces are kept");
    }

    #[derive(Serialize, Deserialize)]
    struct Args {
        name: Input<String>,
        port: Input<u16>,
        url: Input<String>,
    }

    #[allow(non_snake_case)]
    fn Known(map: HashMap<Urn, (String, serde_json::Value)>) -> KnownOutputs {
        let mut known = KnownOutputs::new();
        for (urn, (id, outputs)) in map {
            known.insert(urn, Some(id), Value::from_json(outputs));
        }
        known
    }

    fn db() -> Urn {
        Urn::new("s", None, "aws:rds:Instance", "db").unwrap()
    }

    #[test]
    fn references_are_dependencies_and_resolve_late() {
        let address: Output<String> = Output::reference(db(), OutputField::Field(Path::parse("address").unwrap()));
        let port: Output<u16> = Output::reference(db(), OutputField::Field(Path::parse("port").unwrap()));
        let args = Args { name: "x".into(), port: port.clone().into(), url: crate::format_output!("mysql://{}:{}", address, port).into() };
        let template = Template::capture(&args).unwrap();
        assert_eq!(template.dependencies().into_iter().collect::<Vec<_>>(), vec![db()]);

        let unknown = template.resolve(&Known(HashMap::new())).unwrap();
        assert_eq!(unknown.get_path(&Path::parse("url").unwrap()), Some(Value::Unknown));
        assert_eq!(unknown.get_path(&Path::parse("name").unwrap()), Some("x".into()));
        // A provider at plan time sees the unknown field as Input::Unknown.
        let seen: Args = serde_json::from_value(unknown.to_json_revealed()).unwrap();
        assert!(!seen.url.is_known() && seen.name.is_known());

        let mut known = HashMap::new();
        known.insert(db(), ("db-1".to_string(), serde_json::json!({"address": "db.local", "port": 3306})));
        let resolved = template.resolve(&Known(known)).unwrap();
        assert_eq!(resolved.get_path(&Path::parse("url").unwrap()), Some("mysql://db.local:3306".into()));
    }

    #[test]
    fn secrecy_flows_through_transforms() {
        let pw: Output<String> = Output::reference(db(), OutputField::Field(Path::parse("password").unwrap()));
        let dsn = pw.map(|p| format!("user:{p}@host"));
        let template = Template::capture(&serde_json::json!({})).unwrap();
        drop(template);
        let mut known = HashMap::new();
        known.insert(db(), ("db-1".to_string(), serde_json::json!({"password": {"$berth.secret": "pw"}})));
        let value = evaluate_output(&dsn, &Known(known)).unwrap();
        assert!(value.is_secret());
        assert_eq!(value.unwrap_secret(), &Value::from("user:pw@host"));
    }

    #[test]
    fn serializing_an_output_outside_registration_is_an_error() {
        let o: Output<String> = Output::reference(db(), OutputField::Id);
        assert!(serde_json::to_value(&o).is_err());
    }
}
