//! Adopting existing resources: all or nothing, idempotent, then planned like any other.

mod support;

use berth_engine::import::ImportRequest;
use berth_engine::{Op, Options, ProgramResult, Stack};
use support::{Harness, Thing};

fn request(name: &str, id: &str) -> ImportRequest {
    ImportRequest { ty: "mem:index:Thing".into(), name: name.into(), id: id.into(), parent: None, protect: true }
}

/// Makes an object in the memory cloud "outside berth" and returns its id.
async fn existing(h: &Harness, name: &str, value: &str) -> String {
    use berth_engine::ResourceProvider;
    let provider = support::ThingProvider { cloud: h.cloud.clone() };
    let urn = berth_engine::Urn::new("elsewhere", None, "mem:index:Thing", name).unwrap();
    let ctx = berth_engine::CallContext { urn: &urn, ty: "mem:index:Thing", name, stack: "elsewhere", timeout: None };
    provider.create(ctx, &Thing { name: Some(name.into()), value: value.into(), ..Thing::default() }).await.unwrap().id
}

#[tokio::test]
async fn imported_resources_are_protected_and_match_the_program() {
    let h = Harness::new();
    let id = existing(&h, "legacy-db", "v1").await;
    let imported = h.engine.import(&[request("db", &id)]).await.unwrap();
    assert_eq!(imported[0].inputs.as_object().unwrap()["value"].as_str(), Some("v1"));
    let state = h.state().await;
    assert!(state.resources[0].protect, "adopted resources are protected by default");
    assert_eq!(state.resources[0].id.as_deref(), Some(id.as_str()));
    assert_eq!(h.cloud.mutating_calls(), 1, "only the fixture's own create");

    // The program says the same: no changes.
    let same = |s: &mut Stack| -> ProgramResult {
        s.register("db", Thing { name: Some("legacy-db".into()), value: "v1".into(), ..Thing::default() }, Options::new().protect())?;
        Ok(())
    };
    let plan = h.preview(&same).await.unwrap();
    assert_eq!(plan.steps[0].op, Op::Same, "{:?}", plan.steps[0].diffs);
    // It differs: every differing field, with both values.
    let differs = |s: &mut Stack| -> ProgramResult {
        s.register("db", Thing { name: Some("legacy-db".into()), value: "v2".into(), ..Thing::default() }, Options::new().protect())?;
        Ok(())
    };
    let plan = h.preview(&differs).await.unwrap();
    let diff = &plan.steps[0].diffs[0];
    assert_eq!((plan.steps[0].op, diff.path.to_string()), (Op::Update, "value".to_string()));
    assert_eq!(diff.old.as_ref().unwrap().as_str(), Some("v1"));
    assert_eq!(diff.new.as_ref().unwrap().as_str(), Some("v2"));

    // Idempotent.
    let serial = h.state().await.serial;
    assert!(h.engine.import(&[request("db", &id)]).await.unwrap()[0].already);
    assert_eq!(h.state().await.serial, serial, "a second import changes nothing");
}

#[tokio::test]
async fn bad_imports_change_nothing() {
    let h = Harness::new();
    let id = existing(&h, "a", "v").await;
    let other = existing(&h, "b", "v").await;
    h.engine.import(&[request("kept", &id)]).await.unwrap();
    let before = std::fs::read(h.state_path()).unwrap();
    let cases: Vec<(Vec<ImportRequest>, &str)> = vec![
        (vec![request("x", "t-404")], "no mem:index:Thing with id `t-404` exists"),
        (vec![ImportRequest { ty: "mem:index:Thingy".into(), ..request("x", &other) }], "no resource type `mem:index:Thingy`"),
        (vec![ImportRequest { ty: "nope:index:Thing".into(), ..request("x", &other) }], "no provider for package `nope`"),
        (vec![request("kept", &other)], "is already in state with id"),
        (vec![request("again", &id)], "is already managed by this stack as"),
        // All or nothing: the good first entry is not recorded either.
        (vec![request("good", &other), request("bad", "t-404")], "no mem:index:Thing with id `t-404`"),
        (vec![request("twice", &other), request("twice", &other)], "listed twice"),
    ];
    for (requests, expected) in cases {
        let err = h.engine.import(&requests).await.err().unwrap().to_string();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
        assert_eq!(std::fs::read(h.state_path()).unwrap(), before, "state changed after: {err}");
    }
}

#[tokio::test]
async fn creating_over_an_existing_resource_names_the_import_command() {
    let h = Harness::new();
    let id = existing(&h, "taken", "v").await;
    let program = |s: &mut Stack| -> ProgramResult {
        s.register("site", Thing { name: Some("taken".into()), value: "v".into(), ..Thing::default() }, Options::new())?;
        Ok(())
    };
    let up = h.up(&program).await.unwrap();
    let report = up.report.unwrap();
    let berth_engine::StepStatus::Failed(message) = &report.outcomes[0].status else { panic!("expected a failure: {:?}", report.outcomes) };
    assert!(message.contains(&format!("berth stack import test mem:index:Thing site '{id}'")), "{message}");
}
