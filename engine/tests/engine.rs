//! The engine's planning — operations, replacement strategies, resource options, outputs and
//! references, refresh — against the in-memory provider fixture. Execution is in `apply.rs`,
//! state in `state.rs`.

mod support;

use std::sync::Arc;

use berth_engine::apply::{ApplyOptions, Silent, StepStatus};
use berth_engine::ops::{OpError, Operation, RunOptions};
use berth_engine::{Alias, Op, Options, Output, ProgramResult, Stack};
use support::{Harness, Thing, thing, urn};

#[tokio::test]
async fn create_then_no_op_then_update_then_delete() {
    let h = Harness::new();
    let v1 = |s: &mut Stack| -> ProgramResult {
        let a = thing(s, "a", "one");
        s.register("b", Thing { value: a.output::<String>("upper").into(), ..Thing::default() }, Options::new())?;
        s.export("a_arn", &a.output::<String>("arn"));
        Ok(())
    };
    let preview = h.preview(&v1).await.unwrap();
    let b = preview.steps.iter().find(|s| s.name() == "b").unwrap();
    assert_eq!(b.op, Op::Create);
    assert!(b.new_inputs.as_ref().unwrap().contains_unknown(), "b's value is known only after a is created");
    assert_eq!(h.cloud.mutating_calls(), 0, "preview makes no mutating call");

    let up = h.up(&v1).await.unwrap();
    assert!(up.succeeded());
    assert_eq!(
        h.cloud.by_name(h.state().await.get(&urn(&h, "b")).unwrap().outputs.as_object().unwrap()["name"].as_str().unwrap()).unwrap().value,
        "ONE"
    );
    let state = h.state().await;
    assert!(state.outputs["a_arn"].as_str().unwrap().starts_with("arn:mem:"));

    h.cloud.clear_calls();
    let again = h.up(&v1).await.unwrap();
    assert!(again.report.is_none(), "no-op up applies nothing");
    assert!(again.plan.steps.iter().all(|s| s.op == Op::Same));
    assert_eq!(h.cloud.mutating_calls(), 0, "no-op up makes zero mutating calls");
    assert_eq!(h.state().await.serial, state.serial, "no-op up does not rewrite state");

    let v2 = |s: &mut Stack| -> ProgramResult {
        let a = thing(s, "a", "two");
        s.register("b", Thing { value: a.output::<String>("upper").into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let up = h.up(&v2).await.unwrap();
    assert_eq!(up.ops()["a"], Op::Update);
    assert_eq!(up.ops()["b"], Op::Update, "b's input depends on a's output, which the update changes");
    let b_name = h.state().await.get(&urn(&h, "b")).unwrap().outputs.as_object().unwrap()["name"].as_str().unwrap().to_string();
    assert_eq!(h.cloud.by_name(&b_name).unwrap().value, "TWO");

    let v3 = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "two");
        Ok(())
    };
    let up = h.up(&v3).await.unwrap();
    assert_eq!(up.ops()["b"], Op::Delete);
    assert_eq!(h.cloud.objects().len(), 1);
    let destroyed = h.destroy().await.unwrap();
    assert!(destroyed.succeeded());
    assert!(h.cloud.objects().is_empty());
    assert!(h.state().await.resources.is_empty());
}

#[tokio::test]
async fn replacement_creates_before_deleting_when_names_differ() {
    let h = Harness::new();
    let zone = |z: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            let a = s.register("a", Thing { zone: Some(z.into()), value: "v".into(), ..Thing::default() }, Options::new())?;
            s.register("dep", Thing { value: a.output::<String>("arn").into(), ..Thing::default() }, Options::new())?;
            Ok(())
        }
    };
    h.up(&zone("z1")).await.unwrap();
    h.cloud.clear_calls();
    let up = h.up(&zone("z2")).await.unwrap();
    let step = up.plan.steps.iter().find(|s| s.name() == "a").unwrap();
    assert_eq!(step.op, Op::Replace);
    assert!(!step.delete_before_replace, "an automatic name changes with each replacement: create first");
    assert_eq!(up.ops()["dep"], Op::Update, "the dependent follows the new ARN");
    let calls: Vec<(&str, String)> = h.cloud.calls().iter().map(|c| (c.op, c.name.clone())).collect();
    let create = calls.iter().position(|c| c.0 == "create").unwrap();
    let update = calls.iter().position(|c| c.0 == "update").unwrap();
    let delete = calls.iter().position(|c| c.0 == "delete").unwrap();
    assert!(create < update && update < delete, "create new, move the dependent over, then delete old: {calls:?}");
    assert_eq!(h.cloud.objects().len(), 2);
    assert!(h.state().await.replaced.is_empty());
}

#[tokio::test]
async fn replacement_deletes_first_when_the_physical_name_is_fixed() {
    let h = Harness::new();
    let zone = |z: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            s.register(
                "a",
                Thing { name: Some("fixed".into()), zone: Some(z.into()), value: "v".into(), ..Thing::default() },
                Options::new(),
            )?;
            Ok(())
        }
    };
    h.up(&zone("z1")).await.unwrap();
    h.cloud.clear_calls();
    let up = h.up(&zone("z2")).await.unwrap();
    let step = &up.plan.steps[0];
    assert_eq!((step.op, step.delete_before_replace), (Op::Replace, true));
    assert!(up.succeeded(), "{:?}", up.report);
    let ops: Vec<&str> = h.cloud.calls().iter().map(|c| c.op).collect();
    assert_eq!(ops, vec!["delete", "create"]);
    assert_eq!(h.cloud.by_name("fixed").unwrap().zone.as_deref(), Some("z2"));
}

#[tokio::test]
async fn delete_before_replace_option_forces_the_order() {
    let h = Harness::new();
    let zone = |z: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            s.register("a", Thing { zone: Some(z.into()), value: "v".into(), ..Thing::default() }, Options::new().delete_before_replace())?;
            Ok(())
        }
    };
    h.up(&zone("z1")).await.unwrap();
    h.cloud.clear_calls();
    let up = h.up(&zone("z2")).await.unwrap();
    assert!(up.plan.steps[0].delete_before_replace);
    let ops: Vec<&str> = h.cloud.calls().iter().map(|c| c.op).collect();
    assert_eq!(ops, vec!["delete", "create"]);
}

#[tokio::test]
async fn replace_on_changes_option_turns_an_update_into_a_replacement() {
    let h = Harness::new();
    let value = |v: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            s.register("a", Thing::value(v), Options::new().replace_on_changes(["value"]))?;
            Ok(())
        }
    };
    h.up(&value("x")).await.unwrap();
    let up = h.up(&value("y")).await.unwrap();
    assert_eq!(up.ops()["a"], Op::Replace);
    assert_eq!(up.plan.steps[0].replace_paths[0].to_string(), "value");
}

#[tokio::test]
async fn protect_refuses_delete_and_replace_before_any_call() {
    let h = Harness::new();
    let protected = |s: &mut Stack| -> ProgramResult {
        s.register("keep", Thing { zone: Some("z1".into()), value: "v".into(), ..Thing::default() }, Options::new().protect())?;
        Ok(())
    };
    h.up(&protected).await.unwrap();
    h.cloud.clear_calls();
    let empty = |_: &mut Stack| -> ProgramResult { Ok(()) };
    let err = h.up(&empty).await.err().expect("deleting a protected resource must fail");
    let text = err.to_string();
    assert!(text.contains("keep") && text.contains("protected"), "{text}");
    let err = h.destroy().await.err().expect("destroy must refuse too");
    assert!(err.to_string().contains("protected"));
    let replaced = |s: &mut Stack| -> ProgramResult {
        s.register("keep", Thing { zone: Some("z2".into()), value: "v".into(), ..Thing::default() }, Options::new().protect())?;
        Ok(())
    };
    let err = h.up(&replaced).await.err().expect("replacing a protected resource must fail");
    assert!(err.to_string().contains("replaces it (zone)"), "{err}");
    assert_eq!(h.cloud.mutating_calls(), 0);
    assert_eq!(h.cloud.objects().len(), 1);
    // Unprotecting is a state-only change; then the delete goes through.
    let unprotected = |s: &mut Stack| -> ProgramResult {
        s.register("keep", Thing { zone: Some("z1".into()), value: "v".into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let up = h.up(&unprotected).await.unwrap();
    assert_eq!(up.ops()["keep"], Op::Same);
    assert!(!h.state().await.resources[0].protect);
    assert_eq!(h.cloud.mutating_calls(), 0);
    h.up(&empty).await.unwrap();
    assert!(h.cloud.objects().is_empty());
}

#[tokio::test]
async fn ignore_changes_keeps_the_recorded_value() {
    let h = Harness::new();
    let program = |value: &'static str, tag: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            let t = Thing { value: value.into(), tags: [("team".to_string(), tag.to_string())].into(), ..Thing::default() };
            s.register("a", t, Options::new().ignore_changes(["tags"]))?;
            Ok(())
        }
    };
    h.up(&program("v1", "red")).await.unwrap();
    let plan = h.preview(&program("v1", "blue")).await.unwrap();
    assert_eq!(plan.steps[0].op, Op::Same, "a change to an ignored field is no change");
    h.up(&program("v2", "blue")).await.unwrap();
    let object = &h.cloud.objects()[0];
    assert_eq!(object.value, "v2");
    assert_eq!(object.tags["team"], "red", "the ignored field keeps its recorded value on update");
}

#[tokio::test]
async fn aliases_rename_without_replacement() {
    let h = Harness::new();
    let old = |s: &mut Stack| -> ProgramResult {
        s.register("old-name", Thing { name: Some("physical".into()), value: "v".into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    h.up(&old).await.unwrap();
    h.cloud.clear_calls();
    let renamed = |s: &mut Stack| -> ProgramResult {
        s.register(
            "new-name",
            Thing { name: Some("physical".into()), value: "v".into(), ..Thing::default() },
            Options::new().alias(Alias::name("old-name")),
        )?;
        Ok(())
    };
    let up = h.up(&renamed).await.unwrap();
    assert_eq!(up.plan.steps.len(), 1, "no delete of the old name: {:?}", up.ops());
    assert_eq!(up.plan.steps[0].op, Op::Same);
    assert!(up.plan.steps[0].renamed_from.is_some());
    assert_eq!(h.cloud.mutating_calls(), 0);
    let state = h.state().await;
    assert_eq!(state.resources[0].urn.name(), "new-name");
    // Moving under a component: the parent alias keeps identity too.
    let moved = |s: &mut Stack| -> ProgramResult {
        s.component("test:index:Group", "group", Options::new(), |s, _| -> ProgramResult {
            s.register(
                "new-name",
                Thing { name: Some("physical".into()), value: "v".into(), ..Thing::default() },
                Options::new().alias(Alias::parent(None)),
            )?;
            Ok(())
        })
    };
    let up = h.up(&moved).await.unwrap();
    assert_eq!(h.cloud.mutating_calls(), 0, "{:?}", up.ops());
    assert_eq!(h.state().await.resources.iter().filter(|r| r.custom).count(), 1);
}

#[tokio::test]
async fn a_cycle_is_an_error_listing_its_resources_in_order() {
    let h = Harness::new();
    let cyclic = |s: &mut Stack| -> ProgramResult {
        let c = s.urn_for("mem:index:Thing", "c")?;
        let a = s.register("a", Thing::value("x"), Options::new().depends_on(&c))?;
        let b = s.register("b", Thing::value("x"), Options::new().depends_on(&a))?;
        s.register("c", Thing::value("x"), Options::new().depends_on(&b))?;
        Ok(())
    };
    let err = h.preview(&cyclic).await.err().unwrap();
    assert!(matches!(err, OpError::Graph(_)));
    assert_eq!(err.to_string(), "dependency cycle: a (mem:index:Thing) → c (mem:index:Thing) → b (mem:index:Thing) → a (mem:index:Thing)");
}

#[tokio::test]
async fn check_errors_name_the_resource_and_field_before_any_call() {
    let h = Harness::new();
    let bad = |s: &mut Stack| -> ProgramResult {
        thing(s, "ok", "fine");
        thing(s, "bad", "has spaces");
        thing(s, "worse", "more spaces");
        Ok(())
    };
    let err = h.up(&bad).await.err().unwrap().to_string();
    assert!(err.contains("bad (mem:index:Thing): invalid input value: `has spaces` must not contain spaces"), "{err}");
    assert!(err.contains("worse"), "all problems are reported at once: {err}");
    assert_eq!(h.cloud.calls().len(), 0);
    assert!(!h.state_path().exists(), "nothing written");
}

#[tokio::test]
async fn retain_on_delete_forgets_without_deleting() {
    let h = Harness::new();
    let keep = |s: &mut Stack| -> ProgramResult {
        s.register("kept", Thing::value("v"), Options::new().retain_on_delete())?;
        Ok(())
    };
    h.up(&keep).await.unwrap();
    let empty = |_: &mut Stack| -> ProgramResult { Ok(()) };
    h.up(&empty).await.unwrap();
    assert_eq!(h.cloud.objects().len(), 1, "the object stays");
    assert!(h.state().await.resources.is_empty(), "but leaves the state");
}

#[tokio::test]
async fn targets_limit_the_plan_to_them_and_their_dependents() {
    let h = Harness::new();
    let program = |v: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            let a = thing(s, "a", v);
            s.register("a-child", Thing { value: a.output::<String>("upper").into(), ..Thing::default() }, Options::new())?;
            thing(s, "other", v);
            Ok(())
        }
    };
    h.up(&program("one")).await.unwrap();
    let run = RunOptions { targets: vec!["a".into()], parallel: 4, ..RunOptions::default() };
    let (prepared, _) = h.engine.prepare(Operation::Up, Some(&program("two")), None, &run).await.unwrap();
    let ops: std::collections::HashMap<&str, Op> = prepared.plan.steps.iter().map(|s| (s.name(), s.op)).collect();
    assert_eq!(ops["a"], Op::Update);
    assert_eq!(ops["a-child"], Op::Update);
    assert_eq!(ops["other"], Op::Same, "not targeted");
    h.engine.execute(prepared, &ApplyOptions::default(), Arc::new(Silent)).await.unwrap();
    assert_eq!(h.cloud.objects().iter().filter(|o| o.value == "one").count(), 1);
    let bad = RunOptions { targets: vec!["nope".into()], ..RunOptions::default() };
    assert!(h.engine.preview(&program("two"), None, &bad).await.err().unwrap().to_string().contains("no resource has that URN or name"));
}

#[tokio::test]
async fn import_adopts_an_existing_resource() {
    let h = Harness::new();
    let create = |s: &mut Stack| -> ProgramResult {
        s.register(
            "existing",
            Thing { name: Some("legacy".into()), value: "v".into(), ..Thing::default() },
            Options::new().retain_on_delete(),
        )?;
        Ok(())
    };
    h.up(&create).await.unwrap();
    let id = h.cloud.by_name("legacy").unwrap().id;
    // Forget it from state, as if it had been made outside berth.
    let empty = |_: &mut Stack| -> ProgramResult { Ok(()) };
    h.up(&empty).await.unwrap();
    h.cloud.clear_calls();
    let import_id = id.clone();
    let adopt = move |s: &mut Stack| -> ProgramResult {
        s.register(
            "adopted",
            Thing { name: Some("legacy".into()), value: "v".into(), ..Thing::default() },
            Options::new().import(import_id.clone()),
        )?;
        Ok(())
    };
    let up = h.up(&adopt).await.unwrap();
    assert_eq!(up.ops()["adopted"], Op::Import);
    assert!(up.plan.steps[0].diffs.is_empty());
    assert_eq!(h.cloud.mutating_calls(), 0);
    assert_eq!(h.state().await.resources[0].id.as_deref(), Some(id.as_str()));
    let again = h.up(&adopt).await.unwrap();
    assert!(again.report.is_none(), "import then no changes");
}

#[tokio::test]
async fn refresh_finds_drift_and_deleted_resources() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "v");
        thing(s, "b", "v");
        Ok(())
    };
    h.up(&program).await.unwrap();
    let state = h.state().await;
    let a_id = state.resources[0].id.clone().unwrap();
    let b_id = state.resources[1].id.clone().unwrap();
    h.cloud.objects.lock().unwrap().get_mut(&a_id).unwrap().value = "changed outside".into();
    h.cloud.objects.lock().unwrap().remove(&b_id);
    assert!(!h.preview(&program).await.unwrap().has_changes(), "without refresh, state is trusted");
    let plan = h.preview_with(&program, RunOptions { refresh: true, parallel: 4, ..RunOptions::default() }).await.unwrap();
    assert_eq!(plan.drift.len(), 2);
    let a_drift = plan.drift.iter().find(|d| d.urn.name() == "a").unwrap();
    assert_eq!(a_drift.diffs.as_ref().unwrap()[0].path.to_string(), "value");
    assert!(plan.drift.iter().any(|d| d.urn.name() == "b" && d.diffs.is_none()));
    let ops: std::collections::HashMap<&str, Op> = plan.steps.iter().map(|s| (s.name(), s.op)).collect();
    assert_eq!(ops["a"], Op::Update, "the program's value is restored");
    assert_eq!(ops["b"], Op::Create, "a deleted resource is recreated");
}

#[tokio::test]
async fn outputs_of_unknown_fields_are_registration_errors() {
    let h = Harness::new();
    let typo = |s: &mut Stack| -> ProgramResult {
        let a = thing(s, "a", "v");
        s.register("b", Thing { value: a.output::<String>("uper").into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let err = h.preview(&typo).await.err().unwrap().to_string();
    assert!(err.contains("has no output `uper`; its outputs are: name, arn, upper, len, token"), "{err}");
}

#[tokio::test]
async fn duplicate_names_are_rejected() {
    let h = Harness::new();
    let dup = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "v");
        s.register("a", Thing::value("w"), Options::new())?;
        Ok(())
    };
    let err = h.preview(&dup).await.err().unwrap().to_string();
    assert!(err.contains("registered twice"), "{err}");
}

#[tokio::test]
async fn known_values_flow_through_output_transforms() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        let a = thing(s, "a", "x");
        let url = berth_engine::format_output!("https://{}/{}", a.output::<String>("name"), a.output::<String>("upper"));
        s.register("b", Thing { value: url.into(), ..Thing::default() }, Options::new())?;
        s.export("constant", &Output::known("c".to_string()));
        Ok(())
    };
    h.up(&program).await.unwrap();
    let state = h.state().await;
    let a_name = state.resources[0].outputs.as_object().unwrap()["name"].as_str().unwrap().to_string();
    assert!(h.cloud.objects().iter().any(|o| o.value == format!("https://{a_name}/X")));
    assert_eq!(state.outputs["constant"].as_str(), Some("c"));
}

#[tokio::test]
async fn an_output_the_provider_did_not_predict_still_reaches_its_readers() {
    let h = Harness::new();
    let program = |v: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            let a = thing(s, "a", v);
            s.register(
                "b",
                Thing { value: a.output::<usize>("len").map(|n| format!("len-{n}")).into(), ..Thing::default() },
                Options::new(),
            )?;
            Ok(())
        }
    };
    h.up(&program("abc")).await.unwrap();
    let up = h.up(&program("abcdef")).await.unwrap();
    assert_eq!(up.ops()["b"], Op::Same, "the provider did not say `len` changes, so the plan cannot know");
    let report = up.report.unwrap();
    let b = report.outcomes.iter().find(|o| o.urn.name() == "b").unwrap();
    assert_eq!((b.op, &b.status), (Op::Update, &StepStatus::Succeeded), "but apply updates it, and says so");
    assert!(h.cloud.objects().iter().any(|o| o.value == "len-6"));
    assert!(h.preview(&program("abcdef")).await.unwrap().steps.iter().all(|s| s.op == Op::Same));
}

#[tokio::test]
async fn provider_notes_reach_the_plan() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        s.register("a", Thing { zone: Some("legacy".into()), value: "v".into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let plan = h.preview(&program).await.unwrap();
    assert_eq!(plan.steps[0].notes, vec!["zone `legacy` is deprecated; using its successor".to_string()]);
    let text = berth_engine::render::plan_text(&plan, Default::default());
    assert!(text.contains("zone `legacy` is deprecated"), "{text}");
    assert_eq!(berth_engine::render::plan_json(&plan)["steps"][0]["notes"][0], "zone `legacy` is deprecated; using its successor");
}

#[tokio::test]
async fn stack_references_read_other_stacks_outputs() {
    use berth_engine::references::{References, StaticReferences};
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        let network = s.reference("network.qa")?;
        let vpc: berth_engine::Output<String> = network.output("vpc_id")?;
        let token: berth_engine::Output<String> = network.output("token")?;
        s.register(
            "a",
            Thing { value: vpc.into(), tags: [("owner".to_string(), "net".to_string())].into(), ..Thing::default() },
            Options::new(),
        )?;
        s.register("b", Thing { value: token.map(|t| format!("t-{t}")).into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let mut outputs = std::collections::BTreeMap::new();
    outputs.insert("vpc_id".to_string(), berth_engine::Value::from("vpc-123"));
    outputs.insert("token".to_string(), berth_engine::Value::from("tok").into_secret());
    let with =
        |stacks: StaticReferences| RunOptions { parallel: 4, references: Some(References::new(Arc::new(stacks))), ..RunOptions::default() };
    let present = StaticReferences([("network.qa".to_string(), outputs)].into());

    // Missing: a preview shows unknowns and says why; an up refuses.
    let plan = h.preview_with(&program, with(StaticReferences::default())).await.unwrap();
    assert!(plan.steps.iter().all(|s| s.new_inputs.as_ref().unwrap().contains_unknown()));
    assert!(plan.warnings.iter().any(|w| w.contains("network.qa") && w.contains("no state yet")), "{:?}", plan.warnings);
    let err = h.up_with(&program, with(StaticReferences::default()), ApplyOptions::default()).await.err().unwrap().to_string();
    assert!(err.contains("run `berth stack up network.qa` first"), "{err}");

    // Present: values flow in; secrecy is kept.
    let up = h.up_with(&program, with(present.clone()), ApplyOptions::default()).await.unwrap();
    assert!(up.succeeded());
    assert!(h.cloud.objects().iter().any(|o| o.value == "vpc-123"));
    let state = h.state().await;
    let b = state.resources.iter().find(|r| r.urn.name() == "b").unwrap();
    assert!(b.inputs.as_object().unwrap()["value"].is_secret());
    // A missing output names the ones there are.
    let typo = |s: &mut Stack| -> ProgramResult {
        let _: berth_engine::Output<String> = s.reference("network.qa")?.output("vpc")?;
        Ok(())
    };
    let err = h.preview_with(&typo, with(present)).await.err().unwrap().to_string();
    assert!(err.contains("stack `network.qa` has no output `vpc`; its outputs are: token, vpc_id"), "{err}");
}

#[tokio::test]
async fn a_tainted_resource_with_a_fixed_name_is_replaced_delete_first() {
    let h = Harness::new();
    let program = |value: &'static str| {
        move |s: &mut Stack| -> ProgramResult {
            s.register("job", Thing { name: Some("migrate".into()), value: value.into(), ..Thing::default() }, Options::new())?;
            Ok(())
        }
    };
    let up = h.up(&program("half-made")).await.unwrap();
    assert!(!up.succeeded());
    let state = h.state().await;
    assert!(state.resources[0].tainted, "the half-made resource is recorded, tainted");
    h.cloud.clear_calls();
    let up = h.up(&program("fixed")).await.unwrap();
    let step = &up.plan.steps[0];
    assert_eq!((step.op, step.delete_before_replace), (Op::Replace, true), "same fixed name: delete first");
    assert!(up.succeeded(), "{:?}", up.report);
    let ops: Vec<&str> = h.cloud.calls().iter().map(|c| c.op).collect();
    assert_eq!(ops, vec!["delete", "create"]);
    assert!(!h.state().await.resources[0].tainted);
}

#[tokio::test]
async fn refresh_judges_drift_with_the_providers_own_diff() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "v");
        Ok(())
    };
    h.up(&program).await.unwrap();
    let id = h.state().await.resources[0].id.clone().unwrap();
    h.cloud.objects.lock().unwrap().get_mut(&id).unwrap().value = "  v  ".into();
    let plan = h.preview_with(&program, RunOptions { refresh: true, parallel: 2, ..RunOptions::default() }).await.unwrap();
    assert!(plan.drift.is_empty(), "whitespace the provider ignores is not drift: {:?}", plan.drift);
    assert_eq!(plan.steps[0].op, Op::Same);
    h.cloud.objects.lock().unwrap().get_mut(&id).unwrap().value = "w".into();
    let plan = h.preview_with(&program, RunOptions { refresh: true, parallel: 2, ..RunOptions::default() }).await.unwrap();
    assert_eq!(plan.drift.len(), 1);
}
