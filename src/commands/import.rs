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

/// The imported resources' live settings as YAML, for a stack file or program to reproduce.
fn generated_config(stack: &str, imported: &[Imported]) -> String {
    let doc = json!({
        "resources": imported.iter().map(|i| json!({
            "type": i.ty,
            "name": i.urn.name(),
            "id": i.id,
            "urn": i.urn,
            "inputs": i.inputs.to_json_masked(),
        })).collect::<Vec<_>>()
    });
    let body = crate::output::yaml_text(&doc);
    format!(
        "# Live settings of the resources imported into stack `{stack}` (secret values shown as [secret]).\n# Make the program's configuration say the same, and `berth stack preview {stack}` shows no changes.\n{body}\n"
    )
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
    if let Some(path) = generate_config {
        std::fs::write(path, generated_config(stack, &imported))
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
        text.push_str(&format!(
            "\nThe program must declare these resources with settings matching the live ones{}.\n",
            match generate_config {
                Some(p) => format!(" (written to {})", p.display()),
                None => ": rerun with --generate-config FILE to write them out".to_string(),
            }
        ));
        text.push_str(&format!("Then `berth stack preview {stack}` lists any field where they still differ.\n"));
    }
    ctx.printer.out(&text);
    Ok(0)
}
