//! Every edxapp stack file in stacks/ loads, with its tier underneath, into the typed config.

use std::path::Path;

use berth_components::edxapp::config::{Environment, Source, StackConfig};
use berth_engine::config::from_node;
use berth_engine::crypto::Keyring;
use berth_engine::project::Project;

#[test]
fn the_twelve_stacks_load_into_typed_config() {
    let project = Project::at(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let stacks: Vec<String> =
        project.stacks().into_iter().filter(|s| s.ends_with(".ci") || s.ends_with(".qa") || s.ends_with(".production")).collect();
    assert_eq!(stacks.len(), 12, "{stacks:?}");
    for stack in stacks {
        let settings = project.load_stack(&stack, &[], &Keyring::new(None)).unwrap_or_else(|e| panic!("{stack}: {e}"));
        assert_eq!(settings.program.as_deref(), Some("edxapp"));
        let (config, warnings): (StackConfig, _) = from_node(&settings.config, "config").unwrap_or_else(|e| panic!("{stack}: {e}"));
        assert!(warnings.is_empty(), "{stack}: {warnings:?}");
        let tier = settings.tier.clone().unwrap();
        assert_eq!(config.edxapp.environment.as_str(), tier);
        assert!(config.edxapp.image.digest_problem().is_none(), "{stack}");
        assert!(matches!(config.network, Source::Stack { .. }) && matches!(config.cluster, Source::Stack { .. }), "{stack}");
        let production = config.edxapp.environment == Environment::Production;
        assert_eq!(config.edxapp.database.multi_az, production, "{stack}: tier defaults reached the stack");
        assert_eq!(config.edxapp.database.deletion_protection, production);
        assert!(config.edxapp.database.max_storage_gb >= config.edxapp.database.storage_gb);
        assert!(
            project.root.join("files/edxapp").join(&config.edxapp.deployment).is_dir(),
            "{stack}: no files for {}",
            config.edxapp.deployment
        );
    }
}

#[test]
fn mistakes_in_a_stack_file_name_file_line_and_key() {
    let project = Project::at(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let overrides = vec![("edxapp.database.storage_gb".to_string(), "lots".to_string())];
    let settings = project.load_stack("mitxonline.qa", &overrides, &Keyring::new(None)).unwrap();
    let err = from_node::<StackConfig>(&settings.config, "config").unwrap_err().to_string();
    assert_eq!(err, "--config:1:1: config.edxapp.database.storage_gb: invalid type: string \"lots\", expected u32");
}

/// `network:` and `cluster:` are inline values or `{stack: NAME}`: a typo in either is reported
/// as what it is, at its line, not as "did not match any variant".
#[test]
fn a_typo_in_a_stack_source_names_the_field() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("stacks/local.yaml")).unwrap();
    for (replacement, expected) in [
        ("  network: {stak: network.local}", "config.network: unknown field `stak`, expected one of `vpc_id`"),
        (
            "  network: {stack: network.local, vpc_id: vpc-1}",
            "either `stack: <name>` (read another stack's outputs) or the values inline, not both",
        ),
        ("  network: {stack: [network.local]}", "`stack` is the name of the stack to read"),
    ] {
        let broken = text.replace("  network: {stack: network.local}", replacement);
        assert_ne!(broken, text);
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(scratch.path().join("stacks/tiers")).unwrap();
        for tier in std::fs::read_dir(root.join("stacks/tiers")).unwrap() {
            let tier = tier.unwrap();
            std::fs::copy(tier.path(), scratch.path().join("stacks/tiers").join(tier.file_name())).unwrap();
        }
        std::fs::write(scratch.path().join("stacks/local.yaml"), broken).unwrap();
        let settings = Project::at(scratch.path().to_path_buf()).load_stack("local", &[], &Keyring::new(None)).unwrap();
        let err = from_node::<StackConfig>(&settings.config, "config").expect_err("refused").to_string();
        assert!(err.contains(expected) && err.contains("stacks/local.yaml:"), "{replacement}: {err}");
    }
}
