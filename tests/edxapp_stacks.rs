//! The shipped edxapp stacks, previewed offline as CI does (`berth stack preview` with a scratch
//! backend and no cluster, Vault or AWS to talk to): every stack plans, its tier's sizes reach
//! the resources, stack references to stacks with no state yet read as unknown, and the plan-time
//! checks of the config bundle fail the preview naming the fragment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

const STACKS: [&str; 12] = [
    "mitx.ci",
    "mitx.qa",
    "mitx.production",
    "mitx-staging.ci",
    "mitx-staging.qa",
    "mitx-staging.production",
    "mitxonline.ci",
    "mitxonline.qa",
    "mitxonline.production",
    "xpro.ci",
    "xpro.qa",
    "xpro.production",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `berth -C project --backend file://state ARGS` with nothing to reach: no kubeconfig, no Vault,
/// AWS pointed at a closed port.
fn offline(project: &Path, state: &Path, args: &[&str]) -> Output {
    let backend = format!("file://{}", state.display());
    Command::new(BIN)
        .args(["-C", project.to_str().unwrap(), "--backend", &backend])
        .args(args)
        .env("BERTH_PASSPHRASE", "offline-preview")
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", state.join("no-kubeconfig"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BERTH_PROJECT")
        .env_remove("BERTH_BACKEND")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn every_shipped_stack_previews_offline() {
    let state = tempfile::tempdir().unwrap();
    for stack in STACKS {
        let run = offline(&repo(), state.path(), &["stack", "preview", stack, "--json", "--detailed-exitcode"]);
        assert_eq!(run.status.code(), Some(2), "{stack}: changes expected\n{}", text(&run));
        let plan: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        let steps = plan["steps"].as_array().unwrap();
        let count = |ty: &str| steps.iter().filter(|s| s["type"] == ty).count();
        assert_eq!(plan["summary"]["create"].as_u64().unwrap() as usize, steps.iter().filter(|s| s["custom"] == true).count(), "{stack}");
        assert_eq!(count("aws:s3:Bucket"), 5, "{stack}: the five edxapp buckets");
        assert_eq!(count("aws:rds:Instance"), 1, "{stack}");
        assert_eq!(count("aws:elasticache:ReplicationGroup"), 1, "{stack}");
        assert_eq!(count("kubernetes:batch/v1:Job"), 3, "{stack}: migrations and waffle flags");
        assert_eq!(count("kubernetes:apps/v1:Deployment"), 5, "{stack}: two webapps, two celery workers, scheduled emails");
        assert_eq!(count("kubernetes:keda.sh/v1alpha1:ScaledObject"), 2, "{stack}");
        assert_eq!(count("kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy"), 1, "{stack}: security groups for pods");
        let warnings = plan["warnings"].to_string();
        let tier = stack.split_once('.').unwrap().1;
        for referenced in [format!("network.{tier}"), format!("cluster.applications.{tier}")] {
            assert!(
                warnings.contains(&format!("stack `{referenced}` has no state yet")),
                "{stack}: a note for {referenced}\n{}",
                text(&run)
            );
        }
        assert!(plan["outputs"]["lms_url"].as_str().is_some_and(|u| u.starts_with("https://")), "{stack}: {}", plan["outputs"]);
        assert!(run.stderr.is_empty(), "{stack}: {}", text(&run));
    }
    assert!(
        std::fs::read_dir(state.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".json")),
        "a preview saves no state"
    );
}

#[test]
fn tier_defaults_reach_the_resources() {
    let state = tempfile::tempdir().unwrap();
    let database = |stack: &str| {
        let run = offline(&repo(), state.path(), &["stack", "preview", stack, "--diff"]);
        let out = String::from_utf8_lossy(&run.stdout).to_string();
        let start = out.find("+ aws:rds:Instance instance").unwrap_or_else(|| panic!("{stack}: no database\n{}", text(&run)));
        let block: String = out[start..].lines().skip(1).take_while(|l| l.starts_with("      ")).collect::<Vec<_>>().join("\n");
        block
    };
    let ci = database("mitxonline.ci");
    assert!(ci.contains("backup_retention_period: 1") && ci.contains("multi_az: false"), "{ci}");
    let qa = database("mitxonline.qa");
    assert!(qa.contains("backup_retention_period: 7") && qa.contains("multi_az: false"), "{qa}");
    let production = database("mitxonline.production");
    assert!(production.contains("multi_az: true") && production.contains("deletion_protection: true"), "{production}");
}

/// A copy of the project's stacks and files, to break.
fn scratch_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
        assert!(status.success());
    };
    copy(&repo().join("stacks"), dir.path());
    copy(&repo().join("files"), dir.path());
    dir
}

#[test]
fn a_broken_config_fragment_fails_the_preview_naming_the_file() {
    let project = scratch_project();
    let state = tempfile::tempdir().unwrap();
    let fragment = project.path().join("files/edxapp/mitx/81-lms-general-config.yaml");
    let original = std::fs::read_to_string(&fragment).unwrap();
    std::fs::write(&fragment, format!("{original}BROKEN_REFERENCE: *no_such_anchor\n")).unwrap();
    let run = offline(project.path(), state.path(), &["stack", "preview", "mitx.qa"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("81-lms-general-config.yaml") && stderr.contains("no_such_anchor"), "{}", text(&run));
    assert!(stderr.contains("lms"), "names the service whose configuration breaks: {}", text(&run));

    // Invalid YAML (a tab-indented mapping) is named the same way, for CMS too.
    std::fs::write(&fragment, original).unwrap();
    let cms = project.path().join("files/edxapp/mitx/71-cms-general-config.yaml");
    let original = std::fs::read_to_string(&cms).unwrap();
    std::fs::write(&cms, format!("{original}STUDIO_BROKEN:\n\t- nested: [unclosed\n")).unwrap();
    let run = offline(project.path(), state.path(), &["stack", "preview", "mitx.qa"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("71-cms-general-config.yaml"), "{}", text(&run));
}

#[test]
fn render_before_the_backing_services_exist_names_what_is_unknown() {
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("gitops");
    let run = offline(&repo(), state.path(), &["stack", "render", "mitxonline.qa", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("known only after apply") && stderr.contains("lms-webapp (kubernetes:apps/v1:Deployment)"), "{}", text(&run));
    assert!(stderr.contains("berth stack up mitxonline.qa --target"), "says what to do: {}", text(&run));
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_service_that_selects_two_workloads_fails_the_preview() {
    let project = scratch_project();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("files/extra")).unwrap();
    // A metrics Service whose selector is too broad: it selects every edxapp workload, the
    // webapps and the Celery workers alike.
    std::fs::write(
        project.path().join("files/extra/metrics.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: edxapp-metrics}\nspec:\n  selector:\n    app.kubernetes.io/name: edxapp\n    app.kubernetes.io/instance: mitx-qa\n  ports: [{port: 9100}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
    )
    .unwrap();
    let extra = "edxapp.extra_manifests=[files/extra/metrics.yaml]";
    let run = offline(project.path(), state.path(), &["stack", "preview", "mitx.qa", "--config", extra]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("Service edxapp-metrics (from files/extra/metrics.yaml) selects the pods of 5 workloads")
            && stderr.contains("lms-webapp")
            && stderr.contains("lms-celery"),
        "{}",
        text(&run)
    );

    // Narrowed to the LMS webapp, it is one more object of the stack (in its namespace).
    std::fs::write(
        project.path().join("files/extra/metrics.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: edxapp-metrics}\nspec:\n  selector:\n    app.kubernetes.io/name: edxapp\n    app.kubernetes.io/instance: mitx-qa\n    app.kubernetes.io/component: lms-webapp\n  ports: [{port: 9100}]\n",
    )
    .unwrap();
    let run = offline(project.path(), state.path(), &["stack", "preview", "mitx.qa", "--config", extra, "--json"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let plan: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(plan["steps"].as_array().unwrap().iter().any(|s| s["name"] == "service-edxapp-metrics"), "{}", text(&run));
}

/// The deployment's files directory is the bundle: an operator's own fragment joins it (in its
/// number's place, for its number's services); a secret fragment berth has no Vault source for,
/// an unknown `${value}` or a number no service reads fail the preview naming the file.
#[test]
fn fragment_files_are_the_bundle_and_their_mistakes_are_named() {
    let project = scratch_project();
    let state = tempfile::tempdir().unwrap();
    let dir = project.path().join("files/edxapp/xpro");
    let preview = |project: &Path| offline(project, state.path(), &["stack", "preview", "xpro.ci", "--json"]);

    // An operator's own ConfigMap fragment for the LMS, using a value berth fills in.
    std::fs::write(dir.join("85-lms-theming.yaml"), "COMPREHENSIVE_THEME_DIRS:\n- /openedx/themes\nTHEME_CACHE_HOST: '${redis_host}'\n")
        .unwrap();
    let run = preview(project.path());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let plan: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let config_maps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "kubernetes:core/v1:ConfigMap")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(config_maps.contains(&"85-lms-theming"), "{config_maps:?}");
    std::fs::remove_file(dir.join("85-lms-theming.yaml")).unwrap();

    for (file, body, expected) in [
        ("04-search-credentials.yaml", "SEARCH_KEY: x\n", "04-search-credentials.yaml: fragments 00–49 are secrets rendered from Vault"),
        ("55-extra.yaml", "EXTRA: '${db_password}'\n", "55-extra.yaml:1: unknown value `${db_password}`"),
        ("95-late.yaml", "LATE: true\n", "95-late.yaml: no service reads fragments numbered 90–99"),
        ("extra.yaml", "X: 1\n", "extra.yaml: a fragment's name must look like NN-purpose.yaml"),
    ] {
        std::fs::write(dir.join(file), body).unwrap();
        let run = preview(project.path());
        assert_eq!(run.status.code(), Some(1), "{file}: {}", text(&run));
        assert!(String::from_utf8_lossy(&run.stderr).contains(expected), "{file}: {}", text(&run));
        std::fs::remove_file(dir.join(file)).unwrap();
    }
}
