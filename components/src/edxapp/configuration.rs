//! The configuration bundle: the numbered fragments each service's `config-aggregator` init
//! container concatenates into `/openedx/config/<service>.env.yml`.
//!
//! - Secrets (00–49) are rendered in the cluster by the Vault Secrets Operator from Vault, with
//!   transformation templates written here (`{{ .Secrets.x }}` for Vault's values).
//! - Common (50–69), Studio (70–79) and LMS (80–89) configuration are ConfigMaps: static files
//!   from `files/edxapp/<deployment>/`, and blocks interpolated from this stack's values.
//!
//! Before anything is registered, each service's concatenation is rendered with placeholders for
//! the values not known yet and checked (see [`bundle`]); a broken bundle fails the preview.

use std::collections::BTreeMap;

use berth_engine::{Input, Options, ProgramResult, Stack};
use berth_provider_kubernetes::ConfigMap;
use serde_json::json;

use crate::edxapp::aws::{Buckets, Cache, Database};
use crate::edxapp::bundle::{self, Fragment};
use crate::edxapp::identity::Identity;
use crate::edxapp::kube::{self, VSO};
use crate::edxapp::vault::VaultPaths;
use crate::edxapp::{Ctx, SERVICES, Service};

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
}

impl Bundles {
    pub fn of(&self, service: Service) -> &[(String, Carrier)] {
        &self.fragments[service.as_str()]
    }
}

/// Values a fragment is rendered with; placeholders at plan time.
struct Values {
    db_host: String,
    db_port: String,
}

impl Values {
    fn placeholders() -> Values {
        Values { db_host: "db.berth-placeholder".into(), db_port: "3306".into() }
    }
}

fn database_credentials(v: &Values) -> String {
    format!(
        "# Rendered by the Vault Secrets Operator from {{creds/edxapp}}.\nmysql_creds: &mysql_creds\n  ENGINE: django.db.backends.mysql\n  HOST: {host}\n  PORT: {port}\n  NAME: edxapp\n  USER: '{{{{ .Secrets.username }}}}'\n  PASSWORD: '{{{{ .Secrets.password }}}}'\n  ATOMIC_REQUESTS: true\n  CONN_MAX_AGE: 0\n  OPTIONS:\n    charset: utf8mb4\n",
        host = v.db_host,
        port = v.db_port
    )
}

fn database_connections(v: &Values) -> String {
    format!(
        "# Rendered by the Vault Secrets Operator from {{creds/edxapp-csmh}}.\nDATABASES:\n  default: *mysql_creds\n  read_replica: *mysql_creds\n  student_module_history:\n    <<: *mysql_creds\n    HOST: {host}\n    NAME: edxapp_csmh\n    USER: '{{{{ .Secrets.username }}}}'\n    PASSWORD: '{{{{ .Secrets.password }}}}'\n",
        host = v.db_host
    )
}

const MONGODB: &str = "mongo_params: &mongo_params\n  host: '{{ .Secrets.host }}'\n  port: {{ .Secrets.port }}\n  user: '{{ .Secrets.user }}'\n  password: '{{ .Secrets.password }}'\n  db: '{{ .Secrets.db }}'\n  ssl: true\n  authsource: admin\n  connectTimeoutMS: 2000\n  socketTimeoutMS: 3000\n";

const REDIS: &str = "redis_cache_config: &redis_cache_config\n  BACKEND: django_redis.cache.RedisCache\n  LOCATION: 'rediss://default:{{ .Secrets.token }}@{{ .Secrets.host }}:6379/1'\n  OPTIONS:\n    CLIENT_CLASS: django_redis.client.DefaultClient\nCELERY_BROKER_HOSTNAME: '{{ .Secrets.host }}:6379'\nCELERY_BROKER_USER: default\nCELERY_BROKER_PASSWORD: '{{ .Secrets.token }}'\n";

/// The Redis database Celery's queues live in; KEDA watches the same one.
pub const CELERY_BROKER_DB: u8 = 0;

const GENERAL: &str = "SECRET_KEY: '{{ .Secrets.SECRET_KEY }}'\nJWT_SECRET_KEY: '{{ .Secrets.JWT_SECRET_KEY }}'\n";

fn oauth(service: Service) -> String {
    let key = service.as_str();
    format!("SOCIAL_AUTH_OAUTH_SECRETS:\n  mitxonline: '{{{{ .Secrets.{key} }}}}'\n")
}

fn interpolated_common(ctx: &Ctx, buckets: &Buckets) -> String {
    let d = &ctx.config.domains;
    let b = |p: &str| buckets.names[p].clone();
    let mfes = ctx.config.enabled_mfes.iter().map(|m| format!("  - {m}\n")).collect::<String>();
    format!(
        "# Interpolated by berth from stack {env}.\nAWS_STORAGE_BUCKET_NAME: {storage}\nFILE_UPLOAD_STORAGE_BUCKET_NAME: {storage}\nCOURSE_IMPORT_EXPORT_BUCKET: {courses}\nGRADES_BUCKET: {grades}\nTRACKING_LOGS_BUCKET: {tracking}\nMFE_BUCKET: {mfe}\nLMS_BASE: {lms}\nLMS_ROOT_URL: https://{lms}\nCMS_BASE: {studio}\nCMS_ROOT_URL: https://{studio}\nPREVIEW_LMS_BASE: {preview}\nDEFAULT_FROM_EMAIL: no-reply@{mail}\nSERVER_EMAIL: devops@{mail}\nOPENEDX_RELEASE: {release}\nENABLED_MFES:\n{mfes}",
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

/// Where a secret fragment's values come from in Vault.
enum FromVault {
    Kv { path: String },
    Database { role: &'static str },
}

struct SecretFragment {
    name: &'static str,
    source: FromVault,
    /// The template, from values (placeholders at plan time).
    text: fn(&Values) -> String,
    services: &'static [Service],
}

fn static_file(ctx: &Ctx, file: &str) -> Result<String, String> {
    let path = ctx.files_dir.join(format!("{file}.yaml"));
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn shown(ctx: &Ctx, file: &str) -> String {
    format!("files/edxapp/{}/{file}.yaml", ctx.files_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
pub fn bundle(
    stack: &mut Stack,
    ctx: &Ctx,
    buckets: &Buckets,
    database: &Database,
    _cache: &Cache,
    vault: &VaultPaths,
    identity: &Identity,
) -> ProgramResult<Bundles> {
    let secrets: Vec<SecretFragment> = vec![
        SecretFragment {
            name: "00-database-credentials",
            source: FromVault::Database { role: "edxapp" },
            text: database_credentials,
            services: &SERVICES,
        },
        SecretFragment {
            name: "01-database-connections",
            source: FromVault::Database { role: "edxapp-csmh" },
            text: database_connections,
            services: &SERVICES,
        },
        SecretFragment {
            name: "02-mongodb-credentials",
            source: FromVault::Kv { path: vault.mongodb.clone() },
            text: |_| MONGODB.to_string(),
            services: &SERVICES,
        },
        SecretFragment {
            name: "03-redis-credentials",
            source: FromVault::Kv { path: vault.redis.clone() },
            text: |_| format!("{REDIS}CELERY_BROKER_VHOST: '{CELERY_BROKER_DB}'\n"),
            services: &SERVICES,
        },
        SecretFragment {
            name: "10-general-secrets",
            source: FromVault::Kv { path: vault.general.clone() },
            text: |_| GENERAL.to_string(),
            services: &SERVICES,
        },
        SecretFragment {
            name: "70-cms-oauth",
            source: FromVault::Kv { path: vault.oauth.clone() },
            text: |_| oauth(Service::Cms),
            services: &[Service::Cms],
        },
        SecretFragment {
            name: "80-lms-oauth",
            source: FromVault::Kv { path: vault.oauth.clone() },
            text: |_| oauth(Service::Lms),
            services: &[Service::Lms],
        },
    ];
    // ConfigMaps: name, text, origin (for errors), services.
    let mut maps: Vec<(&'static str, String, String, Vec<Service>)> = Vec::new();
    for (name, services) in [
        ("50-general-config", SERVICES.to_vec()),
        ("71-cms-general-config", vec![Service::Cms]),
        ("81-lms-general-config", vec![Service::Lms]),
    ] {
        maps.push((name, static_file(ctx, name)?, shown(ctx, name), services));
    }
    maps.push((
        "60-interpolated-config",
        interpolated_common(ctx, buckets),
        "ConfigMap 60-interpolated-config (interpolated by berth)".into(),
        SERVICES.to_vec(),
    ));
    maps.push((
        "72-cms-interpolated-config",
        interpolated_service(ctx, Service::Cms),
        "ConfigMap 72-cms-interpolated-config".into(),
        vec![Service::Cms],
    ));
    maps.push((
        "82-lms-interpolated-config",
        interpolated_service(ctx, Service::Lms),
        "ConfigMap 82-lms-interpolated-config".into(),
        vec![Service::Lms],
    ));

    // The check: each service's concatenation, secrets as placeholders, must load.
    let placeholders = Values::placeholders();
    let mut fragments: BTreeMap<&'static str, Vec<(String, Carrier)>> = BTreeMap::new();
    for service in SERVICES {
        let mut texts = Vec::new();
        for s in secrets.iter().filter(|s| s.services.contains(&service)) {
            texts.push(Fragment::new(
                s.name,
                format!("the template of Secret {} (components/src/edxapp/configuration.rs)", s.name),
                bundle::placeholder_template(&(s.text)(&placeholders)),
            ));
            fragments.entry(service.as_str()).or_default().push((s.name.to_string(), Carrier::Secret));
        }
        for (name, text, origin, services) in &maps {
            if services.contains(&service) {
                texts.push(Fragment::new(*name, origin.clone(), text.clone()));
                fragments.entry(service.as_str()).or_default().push((name.to_string(), Carrier::ConfigMap));
            }
        }
        let rendered = bundle::render(service.as_str(), &texts)?;
        for key in rendered.overridden {
            stack.note(format!(
                "{} configuration: `{key}` is defined by more than one fragment without merging the earlier one; only the last counts",
                service.as_str()
            ));
        }
    }

    stack.component("edxapp:index:ConfigBundle", "config", Options::new(), |stack, _| -> ProgramResult<Bundles> {
        for (name, text, _, _) in &maps {
            let data: BTreeMap<String, Input<String>> = [(format!("{name}.yaml"), Input::Value(text.clone()))].into();
            stack.register(name, ConfigMap { metadata: Input::Value(kube::meta(ctx, name, "config")), data, ..ConfigMap::default() }, Options::new())?;
        }
        let uwsgi_text = std::fs::read_to_string(ctx.shared_files_dir.join("uwsgi.ini")).map_err(|e| format!("files/edxapp/uwsgi.ini: {e}"))?;
        let uwsgi = "uwsgi-ini".to_string();
        stack.register(
            "uwsgi-ini",
            ConfigMap { metadata: Input::Value(kube::meta(ctx, &uwsgi, "config")), data: [("uwsgi.ini".to_string(), Input::Value(uwsgi_text))].into(), ..ConfigMap::default() },
            Options::new(),
        )?;
        for s in &secrets {
            let metadata = kube::meta(ctx, s.name, "config");
            let (auth, name, render) = (identity.vault_auth.clone(), s.name, s.text);
            match &s.source {
                FromVault::Kv { path } => {
                    let path = path.clone();
                    let spec = kube::spec_from(&vault.kv_mount, move |mount: String| {
                        let dest = destination(name, render(&Values::placeholders()));
                        json!({"vaultAuthRef": auth, "mount": mount, "path": path, "type": "kv-v2", "refreshAfter": "1h", "destination": dest})
                    });
                    kube::custom(stack, &kube::token(VSO, "VaultStaticSecret"), s.name, &metadata, spec, Options::new())?;
                }
                FromVault::Database { role } => {
                    let role = role.to_string();
                    let spec = vault.db_mount.zip(&database.address.zip(&database.port)).map(move |(mount, (host, port))| {
                        let dest = destination(name, render(&Values { db_host: host, db_port: port.to_string() }));
                        json!({"vaultAuthRef": auth, "mount": mount, "path": format!("creds/{role}"), "renewalPercent": 67, "destination": dest})
                    });
                    kube::custom(stack, &kube::token(VSO, "VaultDynamicSecret"), s.name, &metadata, spec, Options::new())?;
                }
            }
        }
        Ok(Bundles { fragments: fragments.clone(), uwsgi })
    })
}

/// Where the operator writes a fragment: the Secret named like it, holding `<name>.yaml`.
fn destination(name: &str, text: String) -> serde_json::Value {
    json!({"name": name, "create": true, "overwrite": true, "transformation": {"excludeRaw": true, "templates": {format!("{name}.yaml"): {"text": text}}}})
}
