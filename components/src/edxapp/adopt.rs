//! Adopting an existing edxapp deployment: the stack configuration that reproduces the settings
//! of its imported AWS resources (`berth stack import --generate-config`).

use serde_json::{Map, Value as Json, json};

/// One imported resource: its type token, logical name and live inputs (secrets masked).
pub struct ImportedResource<'a> {
    pub ty: &'a str,
    pub name: &'a str,
    pub inputs: &'a Json,
}

/// The `config:` keys of an edxapp stack that the imported database and cache determine, in
/// the shape of [`crate::edxapp::config`]: `{"edxapp": {"database": {...}, "cache": {...}}}`.
/// Keys the live resources cannot tell (the master password, the AUTH token) are left out.
pub fn imported_config(resources: &[ImportedResource<'_>]) -> Json {
    let mut edxapp = Map::new();
    for r in resources {
        let get = |key: &str| r.inputs.get(key).cloned().filter(|v| !v.is_null());
        match (r.ty, r.name) {
            ("aws:rds:Instance", _) => {
                let mut database = Map::new();
                let mut put = |key: &str, value: Option<Json>| {
                    if let Some(v) = value {
                        database.insert(key.to_string(), v);
                    }
                };
                put("instance_type", get("instance_class"));
                put("storage_gb", get("allocated_storage"));
                put("max_storage_gb", get("max_allocated_storage"));
                put("engine_version", get("engine_version").and_then(|v| v.as_str().map(major_minor)).map(Json::String));
                put("multi_az", get("multi_az"));
                put("backup_days", get("backup_retention_period"));
                put("deletion_protection", get("deletion_protection"));
                edxapp.insert("database".into(), Json::Object(database));
            }
            ("aws:elasticache:ReplicationGroup", _) => {
                let mut cache = Map::new();
                let mut put = |key: &str, value: Option<Json>| {
                    if let Some(v) = value {
                        cache.insert(key.to_string(), v);
                    }
                };
                put("node_type", get("node_type"));
                put("nodes", get("num_cache_clusters"));
                put("engine", get("engine"));
                put("engine_version", get("engine_version"));
                edxapp.insert("cache".into(), Json::Object(cache));
            }
            _ => {}
        }
    }
    json!({ "edxapp": edxapp })
}

/// `11.4.5` → `11.4`: the stack names the minor version; RDS applies patch releases itself.
fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_and_cache_settings_become_stack_config() {
        let db = json!({"instance_class": "db.t4g.medium", "allocated_storage": 50, "max_allocated_storage": 200,
                        "engine_version": "11.4.5", "multi_az": false, "backup_retention_period": 7, "deletion_protection": false,
                        "password": "[secret]"});
        let cache = json!({"node_type": "cache.t4g.small", "num_cache_clusters": 2, "engine": "valkey", "engine_version": "7.2"});
        let bucket = json!({"bucket": "x"});
        let config = imported_config(&[
            ImportedResource { ty: "aws:rds:Instance", name: "instance", inputs: &db },
            ImportedResource { ty: "aws:elasticache:ReplicationGroup", name: "replication-group", inputs: &cache },
            ImportedResource { ty: "aws:s3:Bucket", name: "storage", inputs: &bucket },
        ]);
        assert_eq!(
            config,
            json!({"edxapp": {
                "database": {"instance_type": "db.t4g.medium", "storage_gb": 50, "max_storage_gb": 200, "engine_version": "11.4",
                             "multi_az": false, "backup_days": 7, "deletion_protection": false},
                "cache": {"node_type": "cache.t4g.small", "nodes": 2, "engine": "valkey", "engine_version": "7.2"}
            }})
        );
    }
}
