//! AWS's rules for a MariaDB/MySQL instance's inputs, checked before any call.

use berth_engine::Input;

use super::Instance;
use crate::validate::{self, Problems};

fn storage_bounds(storage_type: &str) -> Option<(i32, i32)> {
    match storage_type {
        "gp2" | "gp3" => Some((20, 65536)),
        "io1" | "io2" => Some((100, 65536)),
        "standard" => Some((5, 3072)),
        _ => None,
    }
}

pub(super) fn check_instance(problems: &mut Problems, i: &Instance) {
    if !i.engine_version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
        problems.add("engine_version", format!("`{}` is not a version like 11.4 or 8.0.40", i.engine_version));
    }
    let class_ok = i.instance_class.strip_prefix("db.").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('.').collect();
        parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
    });
    if !class_ok {
        problems.add("instance_class", format!("`{}` is not an instance class like db.t3.medium", i.instance_class));
    }
    match storage_bounds(&i.storage_type) {
        None => problems.add("storage_type", format!("`{}` is not one of gp3, gp2, io1, io2, standard", i.storage_type)),
        Some((min, max)) if !(min..=max).contains(&i.allocated_storage) => problems.add(
            "allocated_storage",
            format!(
                "{} GiB is out of range: {} storage for {} takes {min} to {max} GiB",
                i.allocated_storage,
                i.storage_type,
                i.engine.as_str()
            ),
        ),
        Some((_, max)) => {
            if let Some(limit) = i.max_allocated_storage {
                let least = i.allocated_storage + (i.allocated_storage + 9) / 10;
                if limit < least || limit > max {
                    problems.add("max_allocated_storage", format!("{limit} GiB: the autoscaling limit must be at least 10% above allocated_storage ({least} GiB or more) and at most {max} GiB"));
                }
            }
        }
    }
    if let Input::Value(password) = &i.password {
        problems.check("password", validate::secret_text(password.expose(), 8, 41, &['/', '"', '@'], "the master password"));
    }
    let username_ok = !i.username.is_empty()
        && i.username.len() <= 16
        && i.username.starts_with(|c: char| c.is_ascii_alphabetic())
        && i.username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !username_ok {
        problems.add("username", format!("`{}` must have 1 to 16 letters, digits or underscores, starting with a letter", i.username));
    } else if ["rdsadmin", "rdsrepladmin", "root", "mysql.sys"].contains(&i.username.to_ascii_lowercase().as_str()) {
        problems.add("username", format!("`{}` is reserved by RDS", i.username));
    }
    if let Some(db) = &i.db_name
        && (db.is_empty()
            || db.len() > 64
            || !db.starts_with(|c: char| c.is_ascii_alphabetic())
            || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        problems.add("db_name", format!("`{db}` must have 1 to 64 letters, digits or underscores, starting with a letter"));
    }
    if !(1150..=65535).contains(&i.port) {
        problems.add("port", format!("{} is out of range: RDS allows 1150 to 65535", i.port));
    }
    if !(0..=35).contains(&i.backup_retention_period) {
        problems.add("backup_retention_period", format!("{} days is out of range: 0 (no backups) to 35", i.backup_retention_period));
    }
    if i.kms_key_id.is_some() && !i.storage_encrypted {
        problems.add("kms_key_id", "a KMS key needs `storage_encrypted: true`");
    }
    for g in &i.vpc_security_group_ids {
        if let Input::Value(id) = g {
            problems.check("vpc_security_group_ids", validate::resource_id(id, "sg-"));
        }
    }
    if let Some(snapshot) = &i.final_snapshot_identifier {
        problems.check("final_snapshot_identifier", validate::hyphenated_identifier(snapshot, 255, false));
    }
}

#[cfg(test)]
mod tests {
    use berth_engine::Secret;

    use super::*;

    fn base() -> Instance {
        serde_json::from_value(serde_json::json!({
            "engine_version": "11.4", "instance_class": "db.t3.micro", "allocated_storage": 20, "password": "correct-horse-9"
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_rules() {
        let i = base();
        assert_eq!(
            (i.storage_type.as_str(), i.username.as_str(), i.port, i.storage_encrypted, i.apply_immediately),
            ("gp3", "admin", 3306, true, true)
        );
        let mut p = Problems::new();
        check_instance(&mut p, &i);
        assert!(p.0.is_empty(), "{:?}", p.0);
        let bad = Instance {
            engine_version: "eleven".into(),
            instance_class: "t3.micro".into(),
            allocated_storage: 5,
            password: Input::Value(Secret::new("short".into())),
            username: "1x".into(),
            backup_retention_period: 40,
            ..base()
        };
        let mut p = Problems::new();
        check_instance(&mut p, &bad);
        let fields: Vec<String> = p.0.iter().filter_map(|f| f.path.clone()).collect();
        assert_eq!(
            fields,
            vec!["engine_version", "instance_class", "allocated_storage", "password", "username", "backup_retention_period"]
        );
        assert!(!format!("{:?}", p.0).contains("short"), "the password is never echoed");
        let mut p = Problems::new();
        check_instance(&mut p, &Instance { max_allocated_storage: Some(21), ..base() });
        assert_eq!(p.0[0].path.as_deref(), Some("max_allocated_storage"));
    }
}
