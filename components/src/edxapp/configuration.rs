//! The configuration bundle: the numbered fragments each service's `config-aggregator` init
//! container concatenates into `/openedx/config/<service>.env.yml`.
//!
//! Every fragment but the interpolated ones is a file `files/edxapp/<deployment>/NN-purpose.yaml`.
//! The number says which services read it (00–69 both, 70–79 Studio, 80–89 the LMS) and where it
//! goes in the concatenation; the purpose says whether it is a secret:
//! - Secrets (all of 00–49, and the OAuth secrets at 70 and 80) are rendered in the cluster by the
//!   Vault Secrets Operator from Vault: the file is the transformation template
//!   (`{{ .Secrets.x }}` for Vault's values), and berth knows which Vault path each purpose
//!   reads ([`vault_source`]).
//! - The rest are ConfigMaps with the file's text. berth adds the interpolated ones (60, 72, 82).
//!
//! Any fragment may use `${name}` for a value of the stack known only after apply ([`Values`]:
//! the database and cache addresses): berth fills them in.
//!
//! Before anything is registered, each service's concatenation is rendered with placeholders for
//! the values not known yet and checked (see [`bundle`]); a broken bundle fails the preview.

use std::collections::BTreeMap;

use berth_engine::{Input, Options, Output, ProgramResult, Stack};
use berth_provider_kubernetes::ConfigMap;
use serde_json::json;

use crate::edxapp::aws::{Buckets, Cache, Database};
use crate::edxapp::bundle::{self, Fragment};
use crate::edxapp::identity::Identity;
use crate::edxapp::kube::{self, VSO};
use crate::edxapp::vault::VaultPaths;
use crate::edxapp::{Ctx, SERVICES, Service, short_hash};

/// How a fragment reaches the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    ConfigMap,
    Secret,
}

/// The fragments one service mounts, by name, and how.
pub struct Bundles {
    pub fragments: BTreeMap<&'static str, Vec<(String, Carrier)>>,
    /// The ConfigMap holding `uwsgi.ini`.
    pub uwsgi: String,
    /// Per service, a hash of its fragments' texts (templates and values): on the Deployments'
    /// pod templates, so that a configuration change rolls the pods.
    pub hashes: BTreeMap<&'static str, Output<String>>,
}

impl Bundles {
    pub fn of(&self, service: Service) -> &[(String, Carrier)] {
        &self.fragments[service.as_str()]
    }
}

/// The stack's values fragments may use as `${name}`: known after apply, placeholders at plan
/// time.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Values {
    db_host: String,
    db_port: String,
    redis_host: String,
}

impl Values {
    const NAMES: [&'static str; 4] = ["db_host", "db_port", "redis_host", "celery_broker_db"];

    fn placeholders() -> Values {
        Values { db_host: "db.berth-placeholder".into(), db_port: "3306".into(), redis_host: "cache.berth-placeholder".into() }
    }

    fn get(&self, name: &str) -> Option<String> {
        match name {
            "db_host" => Some(self.db_host.clone()),
            "db_port" => Some(self.db_port.clone()),
            "redis_host" => Some(self.redis_host.clone()),
            "celery_broker_db" => Some(CELERY_BROKER_DB.to_string()),
            _ => None,
        }
    }
}

/// The Redis database Celery's queues live in; KEDA watches the same one.
pub const CELERY_BROKER_DB: u8 = 0;

/// `text` with each `${name}` replaced by its value; an unknown name is an error naming
/// `origin:line`.
fn substitute(text: &str, values: &Values, origin: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let line = text[..text.len() - rest.len() + start].matches('\n').count() + 1;
        let Some(end) = after.find('}') else {
            return Err(format!("{origin}:{line}: `${{` without its closing `}}`"));
        };
        let name = &after[..end];
        let value = values.get(name).ok_or_else(|| {
            format!(
                "{origin}:{line}: unknown value `${{{name}}}`; berth fills in {}",
                Values::NAMES.map(|n| format!("${{{n}}}")).join(", ")
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where a secret fragment's values come from in Vault.
#[derive(Clone)]
enum FromVault {
    Kv { path: String },
    Database { role: &'static str },
}

/// The Vault source of each secret purpose (`NN-<purpose>.yaml`).
fn vault_source(purpose: &str, vault: &VaultPaths) -> Option<FromVault> {
    Some(match purpose {
        "database-credentials" => FromVault::Database { role: "edxapp" },
        "database-connections" => FromVault::Database { role: "edxapp-csmh" },
        "mongodb-credentials" => FromVault::Kv { path: vault.mongodb.clone() },
        "redis-credentials" => FromVault::Kv { path: vault.redis.clone() },
        "general-secrets" => FromVault::Kv { path: vault.general.clone() },
        "cms-oauth" | "lms-oauth" => FromVault::Kv { path: vault.oauth.clone() },
        _ => return None,
    })
}

const SECRET_PURPOSES: &str =
    "database-credentials, database-connections, mongodb-credentials, redis-credentials, general-secrets, cms-oauth, lms-oauth";

/// One fragment: its name (`NN-purpose`), where it comes from, its text with `${}` still in it,
/// which services read it, and its Vault source when it is a secret.
struct Source {
    name: String,
    origin: String,
    text: String,
    services: Vec<Service>,
    vault: Option<FromVault>,
}

/// Which services read fragment number `number`.
fn readers(number: u32) -> Option<Vec<Service>> {
    match number {
        0..=69 => Some(SERVICES.to_vec()),
        70..=79 => Some(vec![Service::Cms]),
        80..=89 => Some(vec![Service::Lms]),
        _ => None,
    }
}

/// The deployment's fragment files, in name order.
fn files(ctx: &Ctx, vault: &VaultPaths) -> Result<Vec<Source>, String> {
    let deployment = ctx.files_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let entries = std::fs::read_dir(&ctx.files_dir).map_err(|e| format!("{}: {e}", ctx.files_dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    let mut sources = Vec::new();
    for file in names {
        let origin = format!("files/edxapp/{deployment}/{file}");
        let name = file.trim_end_matches(".yaml").trim_end_matches(".yml").to_string();
        if !bundle::valid_name(&name) {
            return Err(format!("{origin}: a fragment's name must look like NN-purpose.yaml (two digits, a dash, a name)"));
        }
        let number: u32 = name[..2].parse().expect("two digits");
        let services = readers(number)
            .ok_or_else(|| format!("{origin}: no service reads fragments numbered 90–99 (00–69 both, 70–79 Studio, 80–89 the LMS)"))?;
        let purpose = &name[3..];
        let vault = vault_source(purpose, vault);
        if vault.is_none() && number < 50 {
            return Err(format!(
                "{origin}: fragments 00–49 are secrets rendered from Vault, and berth knows no Vault source for `{purpose}` (it knows {SECRET_PURPOSES}); put plain settings in 50–89"
            ));
        }
        let text = std::fs::read_to_string(ctx.files_dir.join(&file)).map_err(|e| format!("{origin}: {e}"))?;
        sources.push(Source { name, origin, text, services, vault });
    }
    Ok(sources)
}

fn interpolated_common(ctx: &Ctx, buckets: &Buckets) -> String {
    let d = &ctx.config.domains;
    let b = |p: &str| buckets.names[p].clone();
    let mfes = ctx.config.enabled_mfes.iter().map(|m| format!("  - {m}\n")).collect::<String>();
    format!(
        "# Interpolated by berth from stack {env}.\nAWS_STORAGE_BUCKET_NAME: {storage}\nFILE_UPLOAD_STORAGE_BUCKET_NAME: {storage}\nCOURSE_IMPORT_EXPORT_BUCKET: {courses}\nGRADES_BUCKET: {grades}\nTRACKING_LOGS_BUCKET: {tracking}\nMFE_BUCKET: {mfe}\nLMS_BASE: {lms}\nLMS_ROOT_URL: https://{lms}\nCMS_BASE: {studio}\nCMS_ROOT_URL: https://{studio}\nPREVIEW_LMS_BASE: {preview}\nDEFAULT_FROM_EMAIL: no-reply@{mail}\nSERVER_EMAIL: devops@{mail}\nOPENEDX_RELEASE: {release}\nCELERY_BROKER_HOSTNAME: '${{redis_host}}:6379'\nREDIS_HOST: ${{redis_host}}\nENABLED_MFES:\n{mfes}",
        env = ctx.env_name,
        storage = b("storage"),
        courses = b("courses"),
        grades = b("grades"),
        tracking = b("tracking"),
        mfe = b("mfe"),
        lms = d.lms,
        studio = d.studio,
        preview = d.preview,
        mail = ctx.config.mail_domain,
        release = ctx.config.openedx_release,
        mfes = if mfes.is_empty() { "  []\n".to_string() } else { mfes },
    )
}

fn interpolated_service(ctx: &Ctx, service: Service) -> String {
    let d = &ctx.config.domains;
    match service {
        Service::Lms => format!(
            "SITE_NAME: {lms}\nSESSION_COOKIE_DOMAIN: {lms}\nCSRF_TRUSTED_ORIGINS:\n- https://{studio}\n",
            lms = d.lms,
            studio = d.studio
        ),
        Service::Cms => format!(
            "SITE_NAME: {studio}\nSESSION_COOKIE_DOMAIN: {studio}\nCSRF_TRUSTED_ORIGINS:\n- https://{lms}\n",
            lms = d.lms,
            studio = d.studio
        ),
    }
}

/// The Deployments that read a fragment, for the operator to restart when Vault's values change.
fn restart_targets(ctx: &Ctx, services: &[Service]) -> serde_json::Value {
    let mut targets = Vec::new();
    for service in services {
        for role in ["webapp", "celery"] {
            targets.push(json!({"kind": "Deployment", "name": format!("{}-edxapp-{}-{role}", ctx.env_name, service.as_str())}));
        }
        if *service == Service::Lms {
            targets.push(json!({"kind": "Deployment", "name": format!("{}-edxapp-scheduled-emails", ctx.env_name)}));
        }
    }
    json!(targets)
}

#[allow(clippy::too_many_arguments)]
pub fn bundle(
    stack: &mut Stack,
    ctx: &Ctx,
    buckets: &Buckets,
    database: &Database,
    cache: &Cache,
    vault: &VaultPaths,
    identity: &Identity,
) -> ProgramResult<Bundles> {
    let mut sources = files(ctx, vault)?;
    for (name, text, services) in [
        ("60-interpolated-config", interpolated_common(ctx, buckets), SERVICES.to_vec()),
        ("72-cms-interpolated-config", interpolated_service(ctx, Service::Cms), vec![Service::Cms]),
        ("82-lms-interpolated-config", interpolated_service(ctx, Service::Lms), vec![Service::Lms]),
    ] {
        sources.push(Source {
            name: name.into(),
            origin: format!("ConfigMap {name} (interpolated by berth)"),
            text,
            services,
            vault: None,
        });
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));

    // The check: each service's concatenation, `${}` and Vault's values as placeholders, must load.
    let placeholders = Values::placeholders();
    let mut fragments: BTreeMap<&'static str, Vec<(String, Carrier)>> = BTreeMap::new();
    for service in SERVICES {
        let mut texts = Vec::new();
        for source in sources.iter().filter(|s| s.services.contains(&service)) {
            let text = substitute(&source.text, &placeholders, &source.origin)?;
            let carrier = if source.vault.is_some() { Carrier::Secret } else { Carrier::ConfigMap };
            let text = if carrier == Carrier::Secret { bundle::placeholder_template(&text) } else { text };
            texts.push(Fragment::new(source.name.clone(), source.origin.clone(), text));
            fragments.entry(service.as_str()).or_default().push((source.name.clone(), carrier));
        }
        let rendered = bundle::render(service.as_str(), &texts)?;
        for key in rendered.overridden {
            stack.note(format!(
                "{} configuration: `{key}` is defined by more than one fragment without merging the earlier one; only the last counts",
                service.as_str()
            ));
        }
    }

    let values: Output<Values> = database.address.zip(&database.port).zip(&cache.address).map(|((db_host, db_port), redis_host)| Values {
        db_host,
        db_port: db_port.to_string(),
        redis_host,
    });
    let uwsgi_text = std::fs::read_to_string(ctx.shared_files_dir.join("uwsgi.ini")).map_err(|e| format!("files/edxapp/uwsgi.ini: {e}"))?;
    let mut hashes = BTreeMap::new();
    for service in SERVICES {
        let mut texts: Vec<String> = sources.iter().filter(|s| s.services.contains(&service)).map(|s| s.text.clone()).collect();
        texts.push(uwsgi_text.clone());
        hashes.insert(
            service.as_str(),
            values.map(move |v: Values| {
                let data = [texts.join("\0"), v.db_host, v.db_port, v.redis_host].join("\0") + "\0";
                short_hash(data.as_bytes(), 8)
            }),
        );
    }

    stack.component("edxapp:index:ConfigBundle", "config", Options::new(), |stack, _| -> ProgramResult<Bundles> {
        for source in sources.iter().filter(|s| s.vault.is_none()) {
            let (text, origin) = (source.text.clone(), source.origin.clone());
            let data_value: Input<String> = if text.contains("${") {
                Input::from(values.map(move |v: Values| substitute(&text, &v, &origin).unwrap_or_default()))
            } else {
                Input::Value(text)
            };
            let data: BTreeMap<String, Input<String>> = [(format!("{}.yaml", source.name), data_value)].into();
            stack.register(&source.name, ConfigMap { metadata: Input::Value(kube::meta(ctx, &source.name, "config")), data, ..ConfigMap::default() }, Options::new())?;
        }
        let uwsgi = "uwsgi-ini".to_string();
        stack.register(
            "uwsgi-ini",
            ConfigMap { metadata: Input::Value(kube::meta(ctx, &uwsgi, "config")), data: [("uwsgi.ini".to_string(), Input::Value(uwsgi_text.clone()))].into(), ..ConfigMap::default() },
            Options::new(),
        )?;
        for source in &sources {
            let Some(from) = &source.vault else { continue };
            let metadata = kube::meta(ctx, &source.name, "config");
            let (auth, name, template, origin) = (identity.vault_auth.clone(), source.name.clone(), source.text.clone(), source.origin.clone());
            let restart = restart_targets(ctx, &source.services);
            let render = move |v: &Values| (destination(&name, substitute(&template, v, &origin).unwrap_or_default()), restart.clone());
            match from.clone() {
                FromVault::Kv { path } => {
                    let spec = vault.kv_mount.zip(&values).map(move |(mount, v): (String, Values)| {
                        let (destination, restart) = render(&v);
                        json!({"vaultAuthRef": auth, "mount": mount, "path": path, "type": "kv-v2", "refreshAfter": "1h", "destination": destination, "rolloutRestartTargets": restart})
                    });
                    kube::custom(stack, &kube::token(VSO, "VaultStaticSecret"), &source.name, &metadata, spec, Options::new())?;
                }
                FromVault::Database { role } => {
                    let spec = vault.db_mount.zip(&values).map(move |(mount, v): (String, Values)| {
                        let (destination, restart) = render(&v);
                        json!({"vaultAuthRef": auth, "mount": mount, "path": format!("creds/{role}"), "renewalPercent": 67, "destination": destination, "rolloutRestartTargets": restart})
                    });
                    kube::custom(stack, &kube::token(VSO, "VaultDynamicSecret"), &source.name, &metadata, spec, Options::new())?;
                }
            }
        }
        Ok(Bundles { fragments: fragments.clone(), uwsgi, hashes: hashes.clone() })
    })
}

/// Where the operator writes a fragment: the Secret named like it, holding `<name>.yaml`.
fn destination(name: &str, text: String) -> serde_json::Value {
    json!({"name": name, "create": true, "overwrite": true, "transformation": {"excludeRaw": true, "templates": {format!("{name}.yaml"): {"text": text}}}})
}
