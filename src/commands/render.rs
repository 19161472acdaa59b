//! `berth stack render`: the stack's Kubernetes objects as manifest files, for GitOps (Argo CD,
//! Flux) to apply instead of berth. Each object gets an Argo CD sync wave from the dependency
//! order, so that a sync applies them in the order `up` would (pre-deploy Jobs before the
//! Deployments they gate, Deployments before their autoscalers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use std::sync::Arc;

use berth_engine::plan::{Op, Step};
use berth_engine::project::StackSettings;
use berth_engine::registry::ProviderSettings;
use berth_engine::urn::Urn;
use berth_engine::value::Value;
use berth_provider_kubernetes::KubernetesSettings;
use berth_provider_kubernetes::cluster::Cluster;
use berth_provider_kubernetes::kinds::Gvk;
use serde_json::{Value as Json, json};

use crate::cli::PlanArgs;
use crate::context::Context;
use crate::error::CliError;
use crate::output::{register_plan_secrets, yaml_text};

const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// One object to write.
struct Rendered {
    urn: Urn,
    manifest: Json,
    wave: usize,
}

pub async fn render(ctx: &Context<'_>, stack: &str, out: &Path, args: &PlanArgs) -> Result<u8, CliError> {
    let settings = ctx.settings(stack, &args.config)?;
    let engine = ctx.engine(&settings)?;
    let program = ctx.program(&settings)?;
    let run = super::stack::run_options(ctx, &settings, args);
    let (plan, dependencies, warnings) = engine.preview_with_dependencies(program.as_ref(), Some(settings.config.clone()), &run).await?;
    register_plan_secrets(&plan);
    super::stack::print_warnings(ctx, &warnings);

    let kubernetes: Vec<&Step> = plan.steps.iter().filter(|s| s.custom && s.op != Op::Delete && s.ty.starts_with("kubernetes:")).collect();
    if kubernetes.is_empty() {
        return Err(CliError::new(format!("stack `{stack}` has no Kubernetes objects to render")));
    }
    // Written for the stack's cluster where it can be asked (an older API server gets the
    // served equivalent, as `up` would apply), else for current clusters.
    let cluster = stack_cluster(ctx, &settings).await;
    let mut negotiated = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut withheld = Vec::new();
    let mut objects = Vec::new();
    for step in &kubernetes {
        let inputs = step.new_inputs.clone().unwrap_or_default();
        let mut paths = Vec::new();
        unknown_paths(&inputs, String::new(), &mut paths);
        if !paths.is_empty() {
            unknown.push(format!("{} ({}): {}", step.name(), step.ty, paths.join(", ")));
            continue;
        }
        if inputs.contains_secret() {
            withheld.push(format!("{} ({})", step.name(), step.ty));
            continue;
        }
        let gvk = Gvk::from_token(&step.ty).map_err(CliError::new)?;
        let api_version = match &cluster {
            Some(cluster) => match cluster.discovery.resolve(&cluster.client, &cluster.server, &gvk).await {
                Ok(target) => {
                    if target.negotiated_from.is_some() {
                        negotiated.insert(format!("{} as {}", gvk.token(), target.api_version()));
                    }
                    target.api_version()
                }
                Err(_) => gvk.api_version(),
            },
            None => gvk.api_version(),
        };
        let manifest = berth_provider_kubernetes::manifest::manifest(&inputs, &api_version, &gvk.kind, None);
        objects.push(Rendered { urn: step.urn.clone(), manifest, wave: 0 });
    }
    if !unknown.is_empty() {
        return Err(CliError::new(format!(
            "cannot render stack `{stack}`: these objects use values known only after apply:\n  {}",
            unknown.join("\n  ")
        ))
        .help(format!(
            "create what they read from first (e.g. `berth stack up {stack} --target <resource>` for the AWS and Vault resources), then render again"
        )));
    }
    assign_waves(&mut objects, &dependencies);
    write_directory(out, &objects)?;

    let mut waves: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for o in &objects {
        waves.entry(o.wave).or_default().push(format!("{}/{}", o.manifest["kind"].as_str().unwrap_or_default(), o.urn.name()));
    }
    if args.json {
        ctx.printer.json(&json!({
            "stack": stack,
            "directory": out.display().to_string(),
            "objects": objects.iter().map(|o| json!({
                "urn": o.urn.as_str(),
                "file": file_name(o),
                "wave": o.wave,
            })).collect::<Vec<_>>(),
            "withheld": withheld,
        }));
    } else {
        ctx.printer.out(&format!("Rendered {} objects of stack {stack} to {} (with kustomization.yaml)\n", objects.len(), out.display()));
        for (wave, names) in &waves {
            ctx.printer.out(&format!("  wave {wave}: {}\n", names.join(", ")));
        }
    }
    match &cluster {
        None => ctx.printer.err(&format!(
            "{} the stack's cluster could not be asked which API versions it serves: manifests use the versions of current clusters\n",
            ctx.printer.style.yellow("note:")
        )),
        Some(_) if !negotiated.is_empty() => ctx.printer.err(&format!(
            "{} the stack's cluster does not serve the current versions of some kinds; written as it serves them: {}\n",
            ctx.printer.style.yellow("note:"),
            negotiated.into_iter().collect::<Vec<_>>().join(", ")
        )),
        Some(_) => {}
    }
    if !withheld.is_empty() {
        ctx.printer.err(&format!(
            "{} {} hold secret values and were not written (deliver them with Vault Secrets Operator, or let `berth stack up` apply them):\n  {}\n",
            ctx.printer.style.yellow("note:"),
            withheld.len(),
            withheld.join("\n  ")
        ));
    }
    Ok(0)
}

/// The stack's cluster (its `providers.kubernetes` settings), if it answers discovery.
async fn stack_cluster(ctx: &Context<'_>, settings: &StackSettings) -> Option<Arc<Cluster>> {
    let provider_settings = ProviderSettings {
        stack: settings.name.clone(),
        project_root: ctx.project.root.clone(),
        node: settings.providers.get(berth_provider_kubernetes::PACKAGE).cloned(),
    };
    let parsed: KubernetesSettings = provider_settings.parse(berth_provider_kubernetes::PACKAGE).ok()?;
    let provider = berth_provider_kubernetes::provider(parsed, &ctx.project.root).ok()?;
    let cluster = provider.connection().get().await.ok()?;
    cluster.discovery.resolve(&cluster.client, &cluster.server, &Gvk::new("", "v1", "ConfigMap")).await.ok()?;
    Some(cluster)
}

/// Every path of `value` that is unknown until apply.
fn unknown_paths(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Unknown => out.push(if at.is_empty() { "(the whole object)".into() } else { at }),
        Value::Secret(inner) => unknown_paths(inner, at, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_paths(item, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                unknown_paths(item, if at.is_empty() { key.clone() } else { format!("{at}.{key}") }, out);
            }
        }
        _ => {}
    }
}

/// An object's wave is one more than the highest wave among the rendered objects it depends on,
/// directly or through resources that are not rendered (AWS, Vault, components); 0 if none.
fn assign_waves(objects: &mut [Rendered], dependencies: &BTreeMap<Urn, BTreeSet<Urn>>) {
    let rendered: HashMap<Urn, usize> = objects.iter().enumerate().map(|(i, o)| (o.urn.clone(), i)).collect();
    let mut memo: HashMap<Urn, usize> = HashMap::new();
    // wave_after(u): the lowest wave an object depending on `u` may have.
    fn wave_after(
        urn: &Urn,
        dependencies: &BTreeMap<Urn, BTreeSet<Urn>>,
        rendered: &HashMap<Urn, usize>,
        memo: &mut HashMap<Urn, usize>,
    ) -> usize {
        if let Some(w) = memo.get(urn) {
            return *w;
        }
        let own = dependencies.get(urn).into_iter().flatten().map(|d| wave_after(d, dependencies, rendered, memo)).max().unwrap_or(0);
        // A rendered object sits at `own`; whatever depends on it comes one wave later.
        let after = if rendered.contains_key(urn) { own + 1 } else { own };
        memo.insert(urn.clone(), after);
        after
    }
    for object in objects.iter_mut() {
        let own = dependencies
            .get(&object.urn)
            .into_iter()
            .flatten()
            .map(|d| wave_after(d, dependencies, &rendered, &mut memo))
            .max()
            .unwrap_or(0);
        object.wave = own;
        let annotations = object
            .manifest
            .pointer_mut("/metadata")
            .and_then(Json::as_object_mut)
            .map(|meta| meta.entry("annotations").or_insert_with(|| json!({})));
        if let Some(Json::Object(annotations)) = annotations {
            annotations.insert(SYNC_WAVE.into(), Json::String(own.to_string()));
        }
    }
}

fn file_name(object: &Rendered) -> String {
    let kind = object.manifest["kind"].as_str().unwrap_or("object").to_ascii_lowercase();
    let name = object.manifest.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_else(|| object.urn.name());
    format!("{:02}-{kind}-{name}.yaml", object.wave)
}

/// Writes one file per object and a kustomization.yaml listing them, replacing any manifests a
/// previous render left (so deleted objects do not linger in the GitOps repository).
fn write_directory(out: &Path, objects: &[Rendered]) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| CliError::new(format!("cannot {what} {}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(|e| fail("create", e))?;
    for entry in std::fs::read_dir(out).map_err(|e| fail("read", e))? {
        let path = entry.map_err(|e| fail("read", e))?.path();
        let ours = path.extension().is_some_and(|x| x == "yaml")
            && std::fs::read_to_string(&path).is_ok_and(|text| text.starts_with("# Rendered by berth"));
        if ours {
            std::fs::remove_file(&path).map_err(|e| fail("clean", e))?;
        }
    }
    let mut files = Vec::new();
    let mut sorted: Vec<&Rendered> = objects.iter().collect();
    sorted.sort_by_key(|o| (o.wave, file_name(o)));
    for object in sorted {
        let file = file_name(object);
        let text = format!("# Rendered by berth from {}; edit the stack, not this file.\n{}", object.urn, yaml_text(&object.manifest));
        std::fs::write(out.join(&file), text).map_err(|e| fail(&format!("write {file} in"), e))?;
        files.push(file);
    }
    let kustomization = json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files});
    std::fs::write(out.join("kustomization.yaml"), format!("# Rendered by berth.\n{}", yaml_text(&kustomization)))
        .map_err(|e| fail("write kustomization.yaml in", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urn(name: &str) -> Urn {
        Urn::parse(&format!("urn:berth:s::kubernetes:core/v1:ConfigMap::{name}")).unwrap()
    }

    fn object(name: &str) -> Rendered {
        Rendered { urn: urn(name), manifest: json!({"kind": "ConfigMap", "metadata": {"name": name}}), wave: 0 }
    }

    #[test]
    fn waves_follow_dependencies_through_resources_that_are_not_rendered() {
        // config ← job ← (aws) ← deployment ← hpa; pvc stands alone.
        let aws = Urn::parse("urn:berth:s::aws:s3:Bucket::b").unwrap();
        let dependencies: BTreeMap<Urn, BTreeSet<Urn>> = [
            (urn("job"), [urn("config")].into()),
            (aws.clone(), [urn("job")].into()),
            (urn("deployment"), [aws].into()),
            (urn("hpa"), [urn("deployment")].into()),
        ]
        .into();
        let mut objects: Vec<Rendered> = ["config", "job", "deployment", "hpa", "pvc"].map(object).into();
        assign_waves(&mut objects, &dependencies);
        let waves: Vec<(String, usize)> = objects.iter().map(|o| (o.urn.name().to_string(), o.wave)).collect();
        assert_eq!(waves, vec![("config".into(), 0), ("job".into(), 1), ("deployment".into(), 2), ("hpa".into(), 3), ("pvc".into(), 0)]);
        assert_eq!(objects[2].manifest["metadata"]["annotations"][SYNC_WAVE], "2");
    }

    #[test]
    fn unknown_paths_are_named() {
        let value = Value::from_json(json!({"data": {"a": "x"}, "spec": [1]}));
        let mut with_unknown = value.clone();
        with_unknown.set_path(&berth_engine::value::Path::parse("data.b").unwrap(), Value::Unknown);
        let mut paths = Vec::new();
        unknown_paths(&value, String::new(), &mut paths);
        assert!(paths.is_empty());
        unknown_paths(&with_unknown, String::new(), &mut paths);
        assert_eq!(paths, vec!["data.b".to_string()]);
    }
}
