//! `berth stack import`.

use std::path::Path;

use berth_engine::Urn;
use berth_engine::import::{ImportFile, ImportRequest, Imported};
use serde_json::json;

use crate::context::Context;
use crate::error::CliError;
use crate::output::register_secrets;

/// Reads the requests from the command line or a file.
fn requests(
    single: Option<(String, String, String)>,
    file: Option<&Path>,
    parent: Option<&str>,
    protect: bool,
) -> Result<Vec<ImportRequest>, CliError> {
    if let Some((ty, name, id)) = single {
        let parent = parent.map(|p| Urn::parse(p).map_err(|e| CliError::new(format!("--parent: {e}")))).transpose()?;
        return Ok(vec![ImportRequest { ty, name, id, parent, protect }]);
    }
    let path = file.ok_or_else(|| CliError::new("nothing to import").help("give TYPE NAME ID, or --file FILE"))?;
    let text = std::fs::read_to_string(path).map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let parsed: ImportFile = serde_json::from_str(&text).map_err(|e| {
        CliError::new(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
            .help("expected {\"resources\": [{\"type\": ..., \"name\": ..., \"id\": ..., \"parent\"?: ..., \"protect\"?: ...}]}")
    })?;
    if parsed.resources.is_empty() {
        return Err(CliError::new(format!("{}: no resources listed", path.display())));
    }
    Ok(parsed.resources.into_iter().map(|r| ImportRequest { protect: r.protect && protect, ..r }).collect())
}

/// The imported resources' live settings as YAML, for a stack file or program to reproduce;
/// with the program's configuration keys that say the same, where the program knows them.
fn generated_config(stack: &str, imported: &[Imported], shape: Option<crate::ImportConfig>) -> String {
    let live: Vec<serde_json::Value> = imported.iter().map(|i| i.inputs.to_json_masked()).collect();
    let mut doc = serde_json::Map::new();
    if let Some(shape) = shape {
        let resources: Vec<(&str, &str, &serde_json::Value)> =
            imported.iter().zip(&live).map(|(i, inputs)| (i.ty.as_str(), i.urn.name(), inputs)).collect();
        doc.insert("config".into(), shape(&resources));
    }
    doc.insert(
        "resources".into(),
        json!(
            imported
                .iter()
                .zip(&live)
                .map(|(i, inputs)| json!({
                    "type": i.ty,
                    "name": i.urn.name(),
                    "id": i.id,
                    "urn": i.urn,
                    "inputs": inputs,
                }))
                .collect::<Vec<_>>()
        ),
    );
    let body = crate::output::yaml_text(&serde_json::Value::Object(doc));
    let config_note = if shape.is_some() {
        format!(
            "# `config:` is the stack configuration that reproduces them: merge it into stacks/{stack}.yaml.\n# Values the resources never reveal (database passwords, AUTH tokens) must be set by hand, e.g.\n#   berth config set {stack} edxapp.database.password --secret\n"
        )
    } else {
        String::new()
    };
    format!(
        "# Live settings of the resources imported into stack `{stack}` (secret values shown as [secret]).\n{config_note}# Make the program's configuration say the same, and `berth stack preview {stack}` shows no changes.\n{body}"
    )
}

/// `--discover PROGRAM`: writes an import file of what the stack's program would create that
/// already exists; imports nothing.
pub async fn discover(
    ctx: &Context<'_>,
    stack: &str,
    program_name: &str,
    deployment: Option<&str>,
    out: Option<&Path>,
    overrides: &[(String, String)],
    json_output: bool,
) -> Result<u8, CliError> {
    let mut overrides = overrides.to_vec();
    if let Some(deployment) = deployment {
        overrides.push((format!("{program_name}.deployment"), deployment.to_string()));
    }
    let settings = ctx.settings(stack, &overrides)?;
    if settings.program.as_deref() != Some(program_name) {
        return Err(CliError::new(format!(
            "stack `{stack}` runs program `{}`, not `{program_name}`",
            settings.program.as_deref().unwrap_or("(none)")
        ))
        .help(format!("discover with the stack's own program: --discover {}", settings.program.as_deref().unwrap_or("<program>"))));
    }
    let engine = ctx.engine(&settings)?;
    let program = ctx.program(&settings)?;
    let run = berth_engine::ops::RunOptions {
        parallel: 8,
        references: Some(ctx.references(&settings)),
        project_dir: Some(ctx.project.root.clone()),
        ..Default::default()
    };
    let found = engine.discover(program.as_ref(), Some(settings.config.clone()), &run, &|ty| ty.starts_with("aws:")).await?;
    let default_out = std::path::PathBuf::from(format!("{stack}.import.json"));
    let out = out.unwrap_or(&default_out);
    let file = json!({
        "resources": found.found.iter().map(|r| {
            let mut entry = json!({"type": r.ty, "name": r.name, "id": r.id, "protect": r.protect});
            if let Some(parent) = &r.parent {
                entry["parent"] = json!(parent);
            }
            entry
        }).collect::<Vec<_>>()
    });
    let text = serde_json::to_string_pretty(&file).unwrap_or_default() + "\n";
    std::fs::write(out, text).map_err(|e| CliError::new(format!("cannot write {}: {e}", out.display())))?;
    if json_output {
        ctx.printer.json(&json!({
            "stack": stack,
            "file": out.display().to_string(),
            "found": file["resources"],
            "missing": found.missing.iter().map(|(urn, why)| {
                let tagged = found.tagged.iter().find(|(u, _)| u == urn).map(|(_, ids)| ids.clone()).unwrap_or_default();
                json!({"urn": urn, "type": urn.type_token(), "error": why, "tagged": tagged})
            }).collect::<Vec<_>>(),
        }));
        return Ok(0);
    }
    let style = ctx.printer.style;
    let mut text = format!("Found {} existing resources of stack {stack}:\n", found.found.len());
    for r in &found.found {
        text.push_str(&format!("  {} {} {} ({})\n", style.op(berth_engine::Op::Import, "="), r.ty, style.bold(&r.name), r.id));
    }
    if !found.missing.is_empty() {
        text.push_str(&format!("Not found ({}: `up` will create them):\n", found.missing.len()));
        for (urn, why) in &found.missing {
            let why = why.as_ref().map(|w| format!(": lookup failed: {w}")).unwrap_or_default();
            text.push_str(&format!("  + {} {}{why}\n", urn.type_token(), urn.name()));
        }
        // Candidates by type: the tags say which deployment, not which of its buckets.
        let mut by_type: std::collections::BTreeMap<&str, (std::collections::BTreeSet<&str>, Vec<&str>)> = Default::default();
        for (urn, ids) in &found.tagged {
            let entry = by_type.entry(urn.type_token()).or_default();
            entry.0.extend(ids.iter().map(String::as_str));
            entry.1.push(urn.name());
        }
        if !by_type.is_empty() {
            text.push_str("Carrying the deployment's tags but named otherwise (review; adopting one under the program's name replaces it unless the names match):\n");
            for (ty, (ids, names)) in &by_type {
                text.push_str(&format!(
                    "  ? {ty} {} (the program's {} not found by name)\n",
                    ids.iter().copied().collect::<Vec<_>>().join(", "),
                    names.join(", ")
                ));
            }
        }
    }
    text.push_str(&format!(
        "\nWrote {}. Review it, then:\n  berth stack import {stack} --file {} --generate-config {stack}.imported.yaml\n",
        out.display(),
        out.display()
    ));
    ctx.printer.out(&text);
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Context<'_>,
    stack: &str,
    single: Option<(String, String, String)>,
    file: Option<&Path>,
    parent: Option<&str>,
    protect: bool,
    generate_config: Option<&Path>,
    json: bool,
) -> Result<u8, CliError> {
    let single_import = single.is_some();
    let requests = requests(single, file, parent, protect)?;
    let settings = ctx.settings(stack, &[])?;
    let engine = ctx.engine(&settings)?;
    let imported = engine.import(&requests).await?;
    let mut secrets = Vec::new();
    for i in &imported {
        i.inputs.secret_strings(&mut secrets);
        i.outputs.secret_strings(&mut secrets);
    }
    register_secrets(secrets);
    let shape = settings.program.as_ref().and_then(|p| ctx.app.import_configs.get(p)).copied();
    if let Some(path) = generate_config {
        std::fs::write(path, generated_config(stack, &imported, shape))
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    if json {
        ctx.printer.json(&json!({
            "stack": stack,
            "imported": imported.iter().map(|i| json!({"urn": i.urn, "type": i.ty, "id": i.id, "already": i.already, "inputs": i.inputs.to_json_masked()})).collect::<Vec<_>>(),
        }));
        return Ok(0);
    }
    let style = ctx.printer.style;
    let mut text = String::new();
    for (i, request) in imported.iter().zip(&requests) {
        let what = if i.already {
            "already imported: unchanged".to_string()
        } else if request.protect {
            "imported (protected)".to_string()
        } else {
            "imported".to_string()
        };
        text.push_str(&format!("{} {} {} ({})  {what}\n", style.op(berth_engine::Op::Import, "="), i.ty, style.bold(i.urn.name()), i.id));
    }
    if imported.iter().all(|i| i.already) {
        text.push_str("\nNothing to do: everything listed is already in state.\n");
    } else {
        // One resource: its settings go to stdout, as `pulumi import` prints the code. Many: to
        // a file, which is easier to review.
        let written_where = match generate_config {
            Some(p) => format!(" (written to {})", p.display()),
            None if single_import => ":".to_string(),
            None => ": rerun with --generate-config FILE to write them out".to_string(),
        };
        text.push_str(&format!("\nThe program must declare these resources with settings matching the live ones{written_where}\n"));
        if single_import && generate_config.is_none() {
            text.push_str(&format!("\n{}\n", generated_config(stack, &imported, shape)));
        }
        text.push_str(&format!("Then `berth stack preview {stack}` lists any field where they still differ.\n"));
    }
    ctx.printer.out(&text);
    Ok(0)
}
