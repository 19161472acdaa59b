//! Every deployment's static config fragments (files/edxapp/<deployment>/) render, with the
//! secret fragments' anchors, into a valid configuration for both services.

use std::path::Path;

use berth_components::edxapp::bundle::{Fragment, placeholder_template, render};

/// The anchors the secret fragments define (the components render these from Vault).
fn secret_fragments() -> Vec<Fragment> {
    vec![
        Fragment::new(
            "00-database-credentials",
            "template 00",
            placeholder_template(
                "mysql_creds: &mysql_creds\n  ENGINE: django.db.backends.mysql\n  USER: {{ .Secrets.username }}\n  PASSWORD: {{ .Secrets.password }}\n",
            ),
        ),
        Fragment::new(
            "02-mongodb-credentials",
            "template 02",
            placeholder_template("mongo_params: &mongo_params\n  host: {{ .Secrets.host }}\n  password: {{ .Secrets.password }}\n"),
        ),
        Fragment::new(
            "03-redis-credentials",
            "template 03",
            placeholder_template(
                "redis_cache_config: &redis_cache_config\n  BACKEND: django_redis.cache.RedisCache\n  LOCATION: rediss://:{{ .Secrets.token }}@host:6379/0\n",
            ),
        ),
    ]
}

#[test]
fn every_deployment_renders_for_lms_and_cms() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../files/edxapp");
    let mut deployments = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        deployments += 1;
        for (service, own) in [("lms", "81-lms-general-config"), ("cms", "71-cms-general-config")] {
            let mut fragments = secret_fragments();
            for name in ["50-general-config", own] {
                let path = dir.join(format!("{name}.yaml"));
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                fragments.push(Fragment::new(name, path.display().to_string(), text));
            }
            let rendered = render(service, &fragments).unwrap_or_else(|e| panic!("{e}"));
            assert!(rendered.text.contains("PLATFORM_NAME"));
            assert!(rendered.overridden.is_empty(), "{}: {:?} defined twice without merging", dir.display(), rendered.overridden);
        }
        // Without the secret fragments, the aliases have nothing to refer to.
        let path = dir.join("50-general-config.yaml");
        let alone = vec![Fragment::new("50-general-config", path.display().to_string(), std::fs::read_to_string(&path).unwrap())];
        assert!(render("lms", &alone).unwrap_err().to_string().contains("refers to an anchor no earlier fragment defines"));
    }
    assert_eq!(deployments, 4);
}
