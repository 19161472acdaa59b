//! What the engine keeps in state, against the in-memory provider fixture: secrets encrypted,
//! state it does not understand refused.

mod support;

use std::sync::Arc;

use berth_engine::{Options, ProgramResult, Stack};
use support::{Harness, Thing, thing};

#[tokio::test]
async fn secrets_are_encrypted_in_state_and_masked_in_plans() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        let a = s.register(
            "a",
            Thing { value: "v".into(), password: Some(berth_engine::Secret::new("hunter2-secret".to_string()).into()), ..Thing::default() },
            Options::new(),
        )?;
        // A secret output flowing into another resource stays secret there.
        s.register("b", Thing { value: a.output::<String>("token").map(|t| format!("{t}!")).into(), ..Thing::default() }, Options::new())?;
        s.export("token", &a.output::<String>("token"));
        Ok(())
    };
    let plan = h.preview(&program).await.unwrap();
    let a = plan.steps.iter().find(|s| s.name() == "a").unwrap();
    assert!(a.new_inputs.as_ref().unwrap().as_object().unwrap()["password"].is_secret());
    h.up(&program).await.unwrap();
    let text = std::fs::read_to_string(h.state_path()).unwrap();
    assert!(!text.contains("hunter2-secret"), "plaintext secret in state");
    assert!(!text.contains("token-t-"), "plaintext secret output in state");
    let state = h.state().await;
    let b = state.resources.iter().find(|r| r.urn.name() == "b").unwrap();
    assert!(b.inputs.as_object().unwrap()["value"].is_secret(), "secrecy follows outputs into inputs");
    assert!(state.outputs["token"].is_secret());
    // Without the passphrase, the state cannot be read.
    let locked = berth_engine::ops::Engine { keyring: Arc::new(berth_engine::crypto::Keyring::new(None)), ..clone_engine(&h) };
    let err = locked.read_state().await.err().unwrap().to_string();
    assert!(err.contains("BERTH_PASSPHRASE"), "{err}");
    let wrong =
        berth_engine::ops::Engine { keyring: Arc::new(berth_engine::crypto::Keyring::new(Some("wrong".into()))), ..clone_engine(&h) };
    assert!(wrong.read_state().await.err().unwrap().to_string().contains("passphrase is wrong"));
}

fn clone_engine(h: &Harness) -> berth_engine::ops::Engine {
    berth_engine::ops::Engine {
        stack: h.engine.stack.clone(),
        backend: h.engine.backend.clone(),
        providers: h.engine.providers.clone(),
        keyring: h.engine.keyring.clone(),
    }
}

/// State written by a newer berth, or a journal left by another stack's state, is refused with
/// the file named and nothing rewritten: berth never guesses with state it does not understand.
#[tokio::test]
async fn state_it_does_not_understand_is_refused_untouched() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "a");
        Ok(())
    };
    assert!(h.up(&program).await.unwrap().succeeded());
    let path = h.state_path();
    let original = std::fs::read_to_string(&path).unwrap();

    let mut newer: serde_json::Value = serde_json::from_str(&original).unwrap();
    newer["schema_version"] = serde_json::json!(99);
    std::fs::write(&path, serde_json::to_vec_pretty(&newer).unwrap()).unwrap();
    let written = std::fs::read(&path).unwrap();
    for err in [h.preview(&program).await.err(), h.up(&program).await.err()] {
        let message = err.expect("a newer schema is refused").to_string();
        assert!(message.contains("test.json") && message.contains("schema version 99") && message.contains("upgrade berth"), "{message}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), written, "refused state is not rewritten");
    std::fs::write(&path, &original).unwrap();

    // A journal whose lineage is another state's.
    let journal = path.with_file_name("test.journal");
    let serial = newer["serial"].as_u64().unwrap();
    std::fs::write(&journal, format!("{{\"journal\":\"berth\",\"lineage\":\"someone-else\",\"base_serial\":{serial}}}\n")).unwrap();
    let message = h.up(&program).await.err().expect("a foreign journal is refused").to_string();
    assert!(message.contains("test.journal") && message.contains("journal belongs to another state"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original, "state untouched");
    assert!(journal.exists(), "the foreign journal is left for the operator to move");
    std::fs::remove_file(&journal).unwrap();
    assert!(h.up(&program).await.unwrap().report.is_none(), "once it is moved away, nothing to do");
}
