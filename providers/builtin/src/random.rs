//! Package `random`: values generated once, at create time, and kept in state.
//!
//! Nothing outside berth's state is created, so `read` returns what was recorded, `lookup`
//! finds nothing and `delete` only forgets. Any input change (including `keepers`, a map of
//! arbitrary values whose only purpose is to force a new value when they change) replaces the
//! resource, which generates a new value.
//!
//! ```
//! use berth_engine::{Options, ProgramResult, Secret, Stack};
//! use berth_provider_builtin::random::{Id, Password};
//!
//! fn program(stack: &mut Stack) -> ProgramResult {
//!     let db = stack.register("mysql-root", Password { length: 40, special: false, ..Password::default() }, Options::new())?;
//!     let _password = db.output::<Secret<String>>("result");
//!     let suffix = stack.register("bucket-suffix", Id { prefix: Some("edx-".into()), ..Id::default() }, Options::new())?;
//!     let _name = suffix.output::<String>("id"); // e.g. "edx-9f86d081"
//!     Ok(())
//! }
//! # let mut stack = Stack::new("dev");
//! # program(&mut stack).unwrap();
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use berth_engine::config::ConfigError;
use berth_engine::registry::{ProviderPlugin, ProviderSettings};
use berth_engine::{
    CallContext, CheckFailure, Input, Package, Path, Provider, ProviderError, Resource, ResourceProvider, Secret, TypedCreated,
    TypedObserved, async_trait,
};
use serde::{Deserialize, Serialize};

/// The package name.
pub const PACKAGE: &str = "random";

/// Shortest password `random:index:Password` generates.
pub const MIN_PASSWORD_LENGTH: u16 = 8;
/// Longest password `random:index:Password` generates.
pub const MAX_PASSWORD_LENGTH: u16 = 256;
/// Default password length.
pub const DEFAULT_PASSWORD_LENGTH: u16 = 32;

/// Lower-case letters.
pub const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
/// Upper-case letters.
pub const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Digits.
pub const NUMERIC: &[u8] = b"0123456789";
/// Special characters: Terraform's default set, which avoids quotes, backslashes, `/`, `^`
/// and spaces, so a password survives YAML, shell, URLs' user-info part and MySQL DSNs.
pub const SPECIAL: &[u8] = b"!@#$%&*()-_=+[]{}<>:?";

/// Fewest and most random bytes in a `random:index:Id`.
pub const MIN_ID_BYTES: u8 = 1;
pub const MAX_ID_BYTES: u8 = 64;
/// Default number of random bytes in a `random:index:Id`.
pub const DEFAULT_ID_BYTES: u8 = 4;

fn yes() -> bool {
    true
}

fn default_length() -> u16 {
    DEFAULT_PASSWORD_LENGTH
}

fn default_byte_length() -> u8 {
    DEFAULT_ID_BYTES
}

/// `random:index:Password`: a random password, generated with the operating system's random
/// number generator, kept encrypted in state and masked everywhere.
///
/// Every enabled character class appears at least once. Changing any input generates a new
/// password (the resource is replaced).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Password {
    /// Number of characters, 8 to 256. Default 32.
    #[serde(default = "default_length")]
    pub length: u16,
    /// Include special characters ([`SPECIAL`]). Default true.
    #[serde(default = "yes")]
    pub special: bool,
    /// Include digits. Default true.
    #[serde(default = "yes")]
    pub numeric: bool,
    /// Include upper-case letters. Default true.
    #[serde(default = "yes")]
    pub upper: bool,
    /// Include lower-case letters. Default true.
    #[serde(default = "yes")]
    pub lower: bool,
    /// Arbitrary values; changing any of them generates a new password. Values may be outputs
    /// of other resources (e.g. rotate when a database is replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keepers: BTreeMap<String, Input<String>>,
}

impl Default for Password {
    fn default() -> Self {
        Password { length: DEFAULT_PASSWORD_LENGTH, special: true, numeric: true, upper: true, lower: true, keepers: BTreeMap::new() }
    }
}

impl Password {
    /// The enabled character classes, with their input names.
    fn classes(&self) -> Vec<(&'static str, &'static [u8])> {
        let mut classes = Vec::new();
        if self.lower {
            classes.push(("lower", LOWER));
        }
        if self.upper {
            classes.push(("upper", UPPER));
        }
        if self.numeric {
            classes.push(("numeric", NUMERIC));
        }
        if self.special {
            classes.push(("special", SPECIAL));
        }
        classes
    }
}

/// What a `random:index:Password` produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasswordOutputs {
    /// The password. Secret: encrypted in state, masked in every display.
    pub result: Secret<String>,
}

impl Resource for Password {
    const TYPE: &'static str = "random:index:Password";
    type Outputs = PasswordOutputs;
}

/// `random:index:Id`: random bytes, shown as hex and URL-safe base64, for unique names
/// (`edx-9f86d081`). Not secret. Changing any input generates a new id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Id {
    /// Number of random bytes, 1 to 64. Default 4 (8 hex characters).
    #[serde(default = "default_byte_length")]
    pub byte_length: u8,
    /// Put in front of the hex form in the `id` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Arbitrary values; changing any of them generates a new id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keepers: BTreeMap<String, Input<String>>,
}

impl Default for Id {
    fn default() -> Self {
        Id { byte_length: DEFAULT_ID_BYTES, prefix: None, keepers: BTreeMap::new() }
    }
}

/// What a `random:index:Id` produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdOutputs {
    /// The bytes in lower-case hex (two characters per byte).
    pub hex: String,
    /// The bytes in URL-safe base64 without padding.
    pub b64_url: String,
    /// `prefix` followed by `hex`; also the resource's provider id.
    pub id: String,
}

impl Resource for Id {
    const TYPE: &'static str = "random:index:Id";
    type Outputs = IdOutputs;
}

/// Random numbers from the operating system, drawn in blocks.
pub(crate) struct OsRng {
    buf: [u8; 256],
    pos: usize,
}

impl OsRng {
    pub(crate) fn new() -> OsRng {
        OsRng { buf: [0; 256], pos: 256 }
    }

    /// Fills `out` with random bytes.
    pub(crate) fn fill(&mut self, out: &mut [u8]) -> Result<(), ProviderError> {
        for byte in out.iter_mut() {
            if self.pos == self.buf.len() {
                getrandom::fill(&mut self.buf).map_err(|e| {
                    ProviderError::other(format!(
                        "cannot read the operating system's random number generator: {e}; \
                         berth needs it to generate passwords and ids (on Linux, check that the getrandom system call or /dev/urandom is available)"
                    ))
                })?;
                self.pos = 0;
            }
            *byte = self.buf[self.pos];
            self.pos += 1;
        }
        Ok(())
    }

    fn next_u32(&mut self) -> Result<u32, ProviderError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A uniform number in `0..n` (`n > 0`): draws that would favour small numbers (the last,
    /// incomplete run of `n` below 2^32) are rejected and drawn again.
    pub(crate) fn below(&mut self, n: u32) -> Result<u32, ProviderError> {
        uniform_below(n, || self.next_u32())
    }
}

/// A uniform number in `0..n` from uniform 32-bit draws, by rejection sampling: a draw in the
/// last, incomplete run of `n` below 2^32 would favour small results, so it is discarded.
fn uniform_below(n: u32, mut draw: impl FnMut() -> Result<u32, ProviderError>) -> Result<u32, ProviderError> {
    if n == 0 {
        return Err(ProviderError::other("internal error: random number below 0 requested"));
    }
    let range = 1u64 << 32;
    let zone = range - range % u64::from(n);
    loop {
        let x = u64::from(draw()?);
        if x < zone {
            return Ok((x % u64::from(n)) as u32);
        }
    }
}

/// Generates a password for `spec`: `length` characters, at least one of each enabled class,
/// the rest uniform over all enabled characters, in a uniformly shuffled order.
pub fn generate_password(spec: &Password) -> Result<String, ProviderError> {
    let classes = spec.classes();
    if classes.is_empty() {
        return Err(ProviderError::other(
            "random:index:Password: every character class is disabled; enable at least one of lower, upper, numeric, special",
        ));
    }
    let length = usize::from(spec.length);
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&spec.length) {
        return Err(ProviderError::other(format!(
            "random:index:Password: length {length} is out of range; use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH}"
        )));
    }
    let all: Vec<u8> = classes.iter().flat_map(|(_, chars)| chars.iter().copied()).collect();
    let mut rng = OsRng::new();
    let pick = |rng: &mut OsRng, set: &[u8]| -> Result<u8, ProviderError> {
        let n = u32::try_from(set.len()).map_err(|_| ProviderError::other("internal error: character set too large"))?;
        Ok(set[rng.below(n)? as usize])
    };
    let mut chars = Vec::with_capacity(length);
    for (_, class) in &classes {
        chars.push(pick(&mut rng, class)?);
    }
    while chars.len() < length {
        chars.push(pick(&mut rng, &all)?);
    }
    // Fisher–Yates, so the guaranteed characters can be anywhere.
    for i in (1..chars.len()).rev() {
        let j = rng.below((i + 1) as u32)? as usize;
        chars.swap(i, j);
    }
    String::from_utf8(chars).map_err(|e| ProviderError::other(format!("internal error: generated password is not text: {e}")))
}

/// Generates the outputs of a `random:index:Id`.
pub fn generate_id(spec: &Id) -> Result<IdOutputs, ProviderError> {
    if !(MIN_ID_BYTES..=MAX_ID_BYTES).contains(&spec.byte_length) {
        return Err(ProviderError::other(format!(
            "random:index:Id: byte_length {} is out of range; use {MIN_ID_BYTES} to {MAX_ID_BYTES}",
            spec.byte_length
        )));
    }
    let mut bytes = vec![0u8; usize::from(spec.byte_length)];
    OsRng::new().fill(&mut bytes)?;
    Ok(id_outputs(&bytes, spec.prefix.as_deref()))
}

fn id_outputs(bytes: &[u8], prefix: Option<&str>) -> IdOutputs {
    let hex = hex(bytes);
    IdOutputs {
        b64_url: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        id: format!("{}{hex}", prefix.unwrap_or_default()),
        hex,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What `read` says for a resource berth did not create: there is nothing outside state to
/// read a random value back from.
fn cannot_import(ty: &str, id: &str, instead: &str) -> ProviderError {
    ProviderError::other(format!(
        "{ty} `{id}` cannot be imported: random values exist only in berth's state, so there is nothing to read back; \
         remove the `import` option to generate a new value{instead}"
    ))
}

/// The provider for `random:index:Password`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PasswordProvider;

#[async_trait]
impl ResourceProvider for PasswordProvider {
    type Resource = Password;

    /// Any change generates a new password.
    fn replace_on(&self) -> Vec<Path> {
        vec![Path::root()]
    }

    async fn check(&self, _ctx: CallContext<'_>, inputs: Password, _seed: &[u8; 32]) -> Result<Password, Vec<CheckFailure>> {
        let mut failures = Vec::new();
        if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&inputs.length) {
            failures.push(CheckFailure::field(
                "length",
                format!(
                    "{} is out of range: a password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters (default {DEFAULT_PASSWORD_LENGTH})",
                    inputs.length
                ),
            ));
        }
        if inputs.classes().is_empty() {
            failures.push(CheckFailure::field(
                "lower",
                "every character class (lower, upper, numeric, special) is disabled; enable at least one",
            ));
        }
        if failures.is_empty() { Ok(inputs) } else { Err(failures) }
    }

    async fn create(&self, _ctx: CallContext<'_>, inputs: &Password) -> Result<TypedCreated<PasswordOutputs>, ProviderError> {
        let result = generate_password(inputs)?;
        // The id says nothing about the password: it is drawn separately.
        let mut tag = [0u8; 8];
        OsRng::new().fill(&mut tag)?;
        Ok(TypedCreated { id: format!("password-{}", hex(&tag)), outputs: PasswordOutputs { result: Secret::new(result) } })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Password>,
        prior_outputs: Option<&PasswordOutputs>,
    ) -> Result<Option<TypedObserved<Password>>, ProviderError> {
        match (prior, prior_outputs) {
            (Some(inputs), Some(outputs)) => {
                Ok(Some(TypedObserved { id: id.to_string(), inputs: inputs.clone(), outputs: outputs.clone() }))
            }
            _ => Err(cannot_import(
                ctx.ty,
                id,
                ", or put the existing password in the stack's configuration as a secret (`berth config set --secret`) and use it from there",
            )),
        }
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &Password,
        new: &Password,
        _old_outputs: &PasswordOutputs,
    ) -> Result<PasswordOutputs, ProviderError> {
        // Every input change replaces the resource, so an update can only come from a change
        // the provider was not asked about (e.g. `ignore_changes` edge cases): generate anew
        // rather than keep a password that does not match its inputs.
        Ok(PasswordOutputs { result: Secret::new(generate_password(new)?) })
    }

    async fn delete(&self, _ctx: CallContext<'_>, _id: &str, _inputs: &Password, _outputs: &PasswordOutputs) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The provider for `random:index:Id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdProvider;

#[async_trait]
impl ResourceProvider for IdProvider {
    type Resource = Id;

    /// Any change generates a new id.
    fn replace_on(&self) -> Vec<Path> {
        vec![Path::root()]
    }

    async fn check(&self, _ctx: CallContext<'_>, inputs: Id, _seed: &[u8; 32]) -> Result<Id, Vec<CheckFailure>> {
        if !(MIN_ID_BYTES..=MAX_ID_BYTES).contains(&inputs.byte_length) {
            return Err(vec![CheckFailure::field(
                "byte_length",
                format!(
                    "{} is out of range: use {MIN_ID_BYTES} to {MAX_ID_BYTES} random bytes (default {DEFAULT_ID_BYTES}, 8 hex characters)",
                    inputs.byte_length
                ),
            )]);
        }
        Ok(inputs)
    }

    async fn create(&self, _ctx: CallContext<'_>, inputs: &Id) -> Result<TypedCreated<IdOutputs>, ProviderError> {
        let outputs = generate_id(inputs)?;
        Ok(TypedCreated { id: outputs.id.clone(), outputs })
    }

    async fn read(
        &self,
        ctx: CallContext<'_>,
        id: &str,
        prior: Option<&Id>,
        prior_outputs: Option<&IdOutputs>,
    ) -> Result<Option<TypedObserved<Id>>, ProviderError> {
        match (prior, prior_outputs) {
            (Some(inputs), Some(outputs)) => {
                Ok(Some(TypedObserved { id: id.to_string(), inputs: inputs.clone(), outputs: outputs.clone() }))
            }
            _ => Err(cannot_import(ctx.ty, id, ", or use the existing value directly as a plain string in the program")),
        }
    }

    async fn update(
        &self,
        _ctx: CallContext<'_>,
        _id: &str,
        _old: &Id,
        new: &Id,
        _old_outputs: &IdOutputs,
    ) -> Result<IdOutputs, ProviderError> {
        generate_id(new)
    }

    async fn delete(&self, _ctx: CallContext<'_>, _id: &str, _inputs: &Id, _outputs: &IdOutputs) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The `random` package with all its resource types.
pub fn package() -> Package {
    Package::new(PACKAGE).with(PasswordProvider).with(IdProvider)
}

/// The `providers.random` section of a stack file. There are no settings; unknown keys are
/// errors so that a typo does not go unnoticed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSettings {}

/// Registers the `random` package with the `berth` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomPlugin;

impl ProviderPlugin for RandomPlugin {
    fn package(&self) -> &str {
        PACKAGE
    }

    fn build(&self, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, ConfigError> {
        let _: RandomSettings = crate::parse_settings(settings, PACKAGE)
            .map_err(|e| e.with_help("the `random` provider has no settings; remove the `providers.random` section"))?;
        Ok(Arc::new(package()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use berth_engine::Urn;
    use berth_engine::config::parse_yaml;

    use super::*;

    fn ctx<'a>(urn: &'a Urn, ty: &'a str) -> CallContext<'a> {
        CallContext { urn, ty, name: urn.name(), stack: "dev", timeout: None }
    }

    fn urn(ty: &str) -> Urn {
        Urn::new("dev", None, ty, "r").unwrap()
    }

    fn count_in(s: &str, set: &[u8]) -> usize {
        s.bytes().filter(|b| set.contains(b)).count()
    }

    #[test]
    fn passwords_have_the_length_and_every_enabled_class() {
        let spec = Password::default();
        let mut seen = HashSet::new();
        let mut chars_seen = HashSet::new();
        for _ in 0..2000 {
            let pw = generate_password(&spec).unwrap();
            assert_eq!(pw.len(), 32);
            for set in [LOWER, UPPER, NUMERIC, SPECIAL] {
                assert!(count_in(&pw, set) >= 1, "{pw} lacks a class");
            }
            assert_eq!(count_in(&pw, LOWER) + count_in(&pw, UPPER) + count_in(&pw, NUMERIC) + count_in(&pw, SPECIAL), 32);
            chars_seen.extend(pw.bytes());
            assert!(seen.insert(pw), "a password repeated");
        }
        // Over 64,000 characters, every one of the 83 possible characters shows up.
        assert_eq!(chars_seen.len(), LOWER.len() + UPPER.len() + NUMERIC.len() + SPECIAL.len());
    }

    #[test]
    fn disabled_classes_never_appear_and_short_passwords_still_get_each_class() {
        let digits_only = Password { special: false, upper: false, lower: false, length: 8, ..Password::default() };
        for _ in 0..200 {
            let pw = generate_password(&digits_only).unwrap();
            assert_eq!(pw.len(), 8);
            assert!(pw.bytes().all(|b| b.is_ascii_digit()), "{pw}");
        }
        let no_special = Password { special: false, length: 8, ..Password::default() };
        for _ in 0..500 {
            let pw = generate_password(&no_special).unwrap();
            assert_eq!(count_in(&pw, SPECIAL), 0, "{pw}");
            for set in [LOWER, UPPER, NUMERIC] {
                assert!(count_in(&pw, set) >= 1, "{pw} lacks a class");
            }
        }
        let long = Password { length: 256, ..Password::default() };
        assert_eq!(generate_password(&long).unwrap().len(), 256);
        assert!(generate_password(&Password { length: 7, ..Password::default() }).is_err());
        let none = Password { special: false, numeric: false, upper: false, lower: false, ..Password::default() };
        assert!(generate_password(&none).is_err());
    }

    #[test]
    fn guaranteed_characters_are_not_always_in_front() {
        // With four classes and 8 characters, if the shuffle were missing, position 0 would
        // always be a lower-case letter.
        let spec = Password { length: 8, ..Password::default() };
        let firsts: HashSet<bool> = (0..200).map(|_| generate_password(&spec).unwrap().as_bytes()[0].is_ascii_lowercase()).collect();
        assert_eq!(firsts.len(), 2);
    }

    #[test]
    fn below_is_uniform() {
        let mut rng = OsRng::new();
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.below(3).unwrap() as usize] += 1;
        }
        // Expected 10,000 each; the standard deviation is about 82.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
        assert!(rng.below(0).is_err());
        assert_eq!(rng.below(1).unwrap(), 0);
    }

    #[test]
    fn below_rejects_draws_that_would_bias_the_result() {
        // 2^32 = 3 * 1431655765 + 1: the single draw u32::MAX would make 0 slightly likelier.
        let mut draws = vec![5u32, u32::MAX]; // popped from the end
        let mut calls = 0;
        let got = uniform_below(3, || {
            calls += 1;
            Ok(draws.pop().unwrap())
        })
        .unwrap();
        assert_eq!((got, calls), (2, 2), "u32::MAX is rejected, 5 % 3 = 2 accepted");
        // For n = 10, the last 6 values (2^32 % 10) are rejected; the one before is kept.
        let mut draws = vec![u32::MAX - 5, u32::MAX - 6];
        let got = uniform_below(10, || Ok(draws.remove(0))).unwrap();
        assert_eq!(got, (u32::MAX - 6) % 10);
        let mut draws = vec![u32::MAX - 6];
        assert_eq!(uniform_below(10, || Ok(draws.remove(0))).unwrap(), (u32::MAX - 6) % 10);
        // A power of two never rejects.
        assert_eq!(uniform_below(64, || Ok(u32::MAX)).unwrap(), 63);
    }

    #[tokio::test]
    async fn password_check_names_the_field_at_fault() {
        let u = urn(Password::TYPE);
        let p = PasswordProvider;
        let err = p.check(ctx(&u, Password::TYPE), Password { length: 4, ..Password::default() }, &[0; 32]).await.unwrap_err();
        assert_eq!(err[0].path.as_deref(), Some("length"));
        assert!(err[0].reason.contains("8 to 256"), "{}", err[0].reason);
        let err = p.check(ctx(&u, Password::TYPE), Password { length: 300, ..Password::default() }, &[0; 32]).await.unwrap_err();
        assert_eq!(err[0].path.as_deref(), Some("length"));
        let none = Password { special: false, numeric: false, upper: false, lower: false, ..Password::default() };
        let err = p.check(ctx(&u, Password::TYPE), none, &[0; 32]).await.unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].path.as_deref(), Some("lower"));
        assert!(err[0].reason.contains("enable at least one"));
        assert!(p.check(ctx(&u, Password::TYPE), Password::default(), &[0; 32]).await.is_ok());
    }

    #[tokio::test]
    async fn defaults_fill_in_through_the_package() {
        let u = urn(Password::TYPE);
        let pkg = package();
        let checked =
            pkg.check(ctx(&u, Password::TYPE), &berth_engine::Value::from_json(serde_json::json!({"length": 12})), &[0; 32]).await.unwrap();
        assert_eq!(
            checked.inputs.to_json_revealed(),
            serde_json::json!({"length": 12, "special": true, "numeric": true, "upper": true, "lower": true})
        );
        let u = urn(Id::TYPE);
        let checked = pkg.check(ctx(&u, Id::TYPE), &berth_engine::Value::from_json(serde_json::json!({})), &[0; 32]).await.unwrap();
        assert_eq!(checked.inputs.to_json_revealed(), serde_json::json!({"byte_length": 4}));
    }

    #[tokio::test]
    async fn password_is_secret_and_any_change_replaces() {
        let u = urn(Password::TYPE);
        let pkg = package();
        let inputs = berth_engine::Value::from_json(serde_json::json!({"length": 16}));
        let created = pkg.create(ctx(&u, Password::TYPE), &inputs).await.unwrap();
        let result = created.outputs.get_path(&Path::parse("result").unwrap()).unwrap();
        assert!(result.is_secret(), "the password must be a secret value");
        assert_eq!(result.as_str().unwrap().len(), 16);
        assert!(!created.id.contains(result.as_str().unwrap()));

        let old = serde_json::json!({"length": 16, "special": true, "numeric": true, "upper": true, "lower": true});
        let mut new = old.clone();
        new["keepers"] = serde_json::json!({"db": "db-2"});
        let v = berth_engine::Value::from_json;
        let diff = pkg.diff(ctx(&u, Password::TYPE), &created.id, &v(old.clone()), &created.outputs, &v(new)).await.unwrap();
        assert!(diff.needs_replace(), "{diff:?}");
        assert_eq!(diff.replace_paths[0].to_string(), "keepers");
        let mut new = old.clone();
        new["special"] = serde_json::json!(false);
        let diff = pkg.diff(ctx(&u, Password::TYPE), &created.id, &v(old.clone()), &created.outputs, &v(new)).await.unwrap();
        assert!(diff.needs_replace());
        let same = pkg.diff(ctx(&u, Password::TYPE), &created.id, &v(old.clone()), &created.outputs, &v(old)).await.unwrap();
        assert!(!same.has_changes());
    }

    #[tokio::test]
    async fn read_returns_the_record_and_refuses_imports() {
        let u = urn(Password::TYPE);
        let spec = Password::default();
        let outputs = PasswordOutputs { result: Secret::new("x".repeat(32)) };
        let seen = PasswordProvider.read(ctx(&u, Password::TYPE), "password-1", Some(&spec), Some(&outputs)).await.unwrap().unwrap();
        assert_eq!((seen.id.as_str(), &seen.inputs, &seen.outputs), ("password-1", &spec, &outputs));
        let err = PasswordProvider.read(ctx(&u, Password::TYPE), "password-1", None, None).await.err().unwrap();
        assert!(err.message.contains("cannot be imported"), "{}", err.message);
        assert!(PasswordProvider.lookup(ctx(&u, Password::TYPE), &spec).await.unwrap().is_none());

        let u = urn(Id::TYPE);
        let err = IdProvider.read(ctx(&u, Id::TYPE), "abcd", None, None).await.err().unwrap();
        assert!(err.message.contains("cannot be imported"));
        assert!(IdProvider.lookup(ctx(&u, Id::TYPE), &Id::default()).await.unwrap().is_none());
    }

    #[test]
    fn id_formats() {
        let out = id_outputs(&[0xde, 0xad, 0xbe, 0xef, 0xfb, 0xff], Some("edx-"));
        assert_eq!(out.hex, "deadbeeffbff");
        assert_eq!(out.b64_url, "3q2-7_v_", "URL-safe alphabet, no padding");
        assert_eq!(out.id, "edx-deadbeeffbff");
        assert_eq!(id_outputs(&[1], None).id, "01");

        let mut ids = HashSet::new();
        for _ in 0..500 {
            let out = generate_id(&Id::default()).unwrap();
            assert_eq!(out.hex.len(), 8);
            assert!(out.hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert_eq!(out.b64_url.len(), 6);
            assert_eq!(out.id, out.hex);
            ids.insert(out.hex);
        }
        assert!(ids.len() > 490, "4 random bytes should almost never repeat in 500 draws");
        let long = generate_id(&Id { byte_length: 64, prefix: Some("p-".into()), ..Id::default() }).unwrap();
        assert_eq!(long.hex.len(), 128);
        assert!(long.id.starts_with("p-") && long.id.ends_with(&long.hex));
        assert!(generate_id(&Id { byte_length: 0, ..Id::default() }).is_err());
        assert!(generate_id(&Id { byte_length: 65, ..Id::default() }).is_err());
    }

    #[tokio::test]
    async fn id_check_names_the_field_at_fault() {
        let u = urn(Id::TYPE);
        for bad in [0u8, 65, 255] {
            let err = IdProvider.check(ctx(&u, Id::TYPE), Id { byte_length: bad, ..Id::default() }, &[0; 32]).await.unwrap_err();
            assert_eq!(err[0].path.as_deref(), Some("byte_length"));
            assert!(err[0].reason.contains("1 to 64"));
        }
        assert!(IdProvider.check(ctx(&u, Id::TYPE), Id { byte_length: 64, ..Id::default() }, &[0; 32]).await.is_ok());
    }

    fn settings(yaml: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            stack: "dev".into(),
            project_root: std::env::temp_dir(),
            node: yaml.map(|y| parse_yaml("stacks/dev.yaml", y).unwrap()),
        }
    }

    #[test]
    fn plugin_builds_and_rejects_unknown_settings() {
        let provider = RandomPlugin.build(&settings(None)).unwrap();
        assert!(provider.supports(Password::TYPE) && provider.supports(Id::TYPE));
        assert!(RandomPlugin.build(&settings(Some("{}"))).is_ok());
        assert!(RandomPlugin.build(&settings(Some("~"))).is_ok(), "an empty section is no settings");
        let err = RandomPlugin.build(&settings(Some("lenght: 12\n"))).err().unwrap();
        let text = err.to_string();
        assert!(text.contains("lenght"), "{text}");
        assert!(err.help.unwrap_or_default().contains("no settings"));
    }
}
