//! The engine's execution of a plan, against the in-memory provider fixture: failures, bounded
//! parallelism, scheduling, interruption and recovery, delete order.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::apply::{ApplyOptions, Silent, StepStatus};
use berth_engine::ops::{Operation, RunOptions};
use berth_engine::{Input, Op, Options, ProgramResult, Stack};
use support::{Harness, Thing, thing, urn};

#[tokio::test]
async fn a_failure_skips_dependents_and_finishes_independent_work() {
    let h = Harness::new();
    let program = |fail: bool| {
        move |s: &mut Stack| -> ProgramResult {
            let a = thing(s, "a", "a");
            let b = s.register("b", Thing { value: a.output::<String>("arn").into(), fail, ..Thing::default() }, Options::new())?;
            s.register("c", Thing { value: b.output::<String>("arn").into(), ..Thing::default() }, Options::new())?;
            thing(s, "independent", "d");
            Ok(())
        }
    };
    let up = h.up(&program(true)).await.unwrap();
    let report = up.report.unwrap();
    assert!(!report.succeeded());
    let status = |name: &str| report.outcomes.iter().find(|o| o.urn.name() == name).unwrap().status.clone();
    assert_eq!(status("a"), StepStatus::Succeeded);
    assert!(matches!(status("b"), StepStatus::Failed(m) if m.contains("failed on purpose") && m.contains("Boom")));
    assert!(matches!(status("c"), StepStatus::Skipped(m) if m.contains("create of b failed")));
    assert_eq!(status("independent"), StepStatus::Succeeded);
    let state = h.state().await;
    let names: Vec<&str> = state.resources.iter().map(|r| r.urn.name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(state.pending.is_empty(), "a definite failure leaves nothing pending");
    // Fixed: the next up creates only what is missing.
    h.cloud.clear_calls();
    let up = h.up(&program(false)).await.unwrap();
    assert!(up.succeeded());
    assert_eq!(h.cloud.calls().iter().filter(|c| c.op == "create").count(), 2);
    assert_eq!(h.cloud.objects().len(), 4);
}

#[tokio::test]
async fn parallelism_is_bounded_and_independent_steps_overlap() {
    let h = Harness::new();
    *h.cloud.latency.lock().unwrap() = Duration::from_millis(30);
    let program = |s: &mut Stack| -> ProgramResult {
        for i in 0..12 {
            thing(s, &format!("t{i}"), "v");
        }
        Ok(())
    };
    let run = RunOptions { parallel: 3, ..RunOptions::default() };
    h.up_with(&program, run, ApplyOptions { parallel: 3, ..ApplyOptions::default() }).await.unwrap();
    assert_eq!(h.cloud.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn interrupting_finishes_in_flight_calls_and_saves_state() {
    let h = Harness::new();
    *h.cloud.latency.lock().unwrap() = Duration::from_millis(200);
    let program = |s: &mut Stack| -> ProgramResult {
        let mut previous: Option<berth_engine::ResourceHandle<Thing>> = None;
        for i in 0..5 {
            let value: Input<String> = match &previous {
                Some(p) => p.output::<String>("arn").into(),
                None => "first".into(),
            };
            previous = Some(s.register(&format!("chain{i}"), Thing { value, ..Thing::default() }, Options::new())?);
        }
        Ok(())
    };
    let (prepared, _) = h.engine.prepare(Operation::Up, Some(&program), None, &RunOptions::default()).await.unwrap();
    let options = ApplyOptions::default();
    let cancel = options.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let executed = h.engine.execute(prepared, &options, Arc::new(Silent)).await.unwrap();
    assert!(executed.report.interrupted);
    let statuses: Vec<StepStatus> = executed.report.outcomes.iter().map(|o| o.status.clone()).collect();
    assert_eq!(statuses[0], StepStatus::Succeeded);
    assert_eq!(statuses[1], StepStatus::Succeeded, "the call in flight at the interrupt finishes");
    assert!(statuses[2..].iter().all(|s| *s == StepStatus::NotStarted), "{statuses:?}");
    let state = h.state().await;
    assert_eq!(state.resources.len(), 2);
    assert!(state.pending.is_empty());
    assert_eq!(state.last_update.unwrap().result, "interrupted");
    // The next run carries on.
    *h.cloud.latency.lock().unwrap() = Duration::ZERO;
    h.up(&program).await.unwrap();
    assert_eq!(h.cloud.objects().len(), 5);
}

#[tokio::test]
async fn a_pending_create_is_adopted_not_repeated() {
    let h = Harness::new();
    let program = |s: &mut Stack| -> ProgramResult {
        thing(s, "a", "v");
        Ok(())
    };
    // Simulate a run killed after the create call: the journal has `begin` but no `done`. The
    // run planned against the stack's state (its lineage seeds the automatic name).
    let mut state = berth_engine::State::new("test");
    let codec = berth_engine::state::StateCodec::for_writing(&mut state, &h.engine.keyring, "test").unwrap();
    berth_engine::state::save(h.engine.backend.as_ref(), &mut state, &codec).await.unwrap();
    let (prepared, _) = h.engine.prepare(Operation::Up, Some(&program), None, &RunOptions::default()).await.unwrap();
    let planned_inputs = prepared.plan.steps[0].new_inputs.clone().unwrap();
    drop(prepared);
    let journal = berth_engine::state::Journal::create(&h.engine.backend.journal_path("test"), codec, &state).unwrap();
    let record = berth_engine::state::ResourceState {
        urn: urn(&h, "a"),
        ty: "mem:index:Thing".into(),
        custom: true,
        id: None,
        parent: None,
        inputs: planned_inputs.clone(),
        outputs: berth_engine::Value::Null,
        dependencies: vec![],
        protect: false,
        retain_on_delete: false,
        custom_timeouts: Default::default(),
        tainted: false,
        generation: 0,
        created_at: String::new(),
        updated_at: String::new(),
    };
    journal
        .record(&berth_engine::state::JournalEntry::Begin {
            kind: berth_engine::state::PendingKind::Create,
            resource: record.clone(),
            started_at: String::new(),
        })
        .await
        .unwrap();
    journal.close();
    // The provider did create it before the "crash".
    let provider = support::ThingProvider { cloud: h.cloud.clone() };
    let typed: Thing = serde_json::from_value(planned_inputs.to_json_revealed()).unwrap();
    let ctx = berth_engine::CallContext { urn: &record.urn, ty: "mem:index:Thing", name: "a", stack: "test", timeout: None };
    berth_engine::ResourceProvider::create(&provider, ctx, &typed).await.unwrap();
    h.cloud.clear_calls();

    let preview = h.preview(&program).await.unwrap();
    assert_eq!(preview.reconciled.len(), 1);
    assert_eq!(preview.steps[0].op, Op::Same, "preview already sees the adopted resource");
    let up = h.up(&program).await.unwrap();
    assert!(up.succeeded());
    assert_eq!(h.cloud.calls().iter().filter(|c| c.op == "create").count(), 0, "never created twice");
    assert_eq!(h.cloud.objects().len(), 1);
    let state = h.state().await;
    assert!(state.pending.is_empty());
    assert!(state.resources[0].id.is_some());
}

/// Deletes run in reverse dependency order: a resource's delete starts only once everything that
/// depends on it is deleted, whether the whole stack is destroyed or only part of it leaves the
/// program. Every call takes a while, so deletes free to run together would overlap.
#[tokio::test]
async fn deletes_run_in_reverse_dependency_order() {
    let h = Harness::new();
    *h.cloud.latency.lock().unwrap() = Duration::from_millis(20);
    let named = |name: &str, value: Input<String>| Thing { name: Some(name.to_string().into()), value, ..Thing::default() };
    // a <- b <- c, a <- d, and d also waits for c (depends_on); e stands alone.
    let program = move |s: &mut Stack| -> ProgramResult {
        let a = s.register("a", named("del-a", "a".into()), Options::new())?;
        let b = s.register("b", named("del-b", a.output::<String>("upper").into()), Options::new())?;
        let c = s.register("c", named("del-c", b.output::<String>("upper").into()), Options::new())?;
        s.register("d", named("del-d", a.output::<String>("upper").into()), Options::new().depends_on(&c))?;
        s.register("e", named("del-e", "e".into()), Options::new())?;
        Ok(())
    };
    // The delete events since `from`: (position of its start, position of its end) by name.
    let deletes_since = |h: &Harness, from: usize| -> HashMap<String, (usize, usize)> {
        let timeline = h.cloud.timeline.lock().unwrap().clone();
        let at = |event: String| timeline.iter().skip(from).position(|e| *e == event);
        ["a", "b", "c", "d", "e"]
            .iter()
            .filter_map(|n| Some((n.to_string(), (at(format!("start delete del-{n}"))?, at(format!("end delete del-{n}"))?))))
            .collect()
    };
    let assert_order = |deletes: &HashMap<String, (usize, usize)>, edges: &[(&str, &str)]| {
        for (dependent, dependency) in edges {
            assert!(deletes[*dependent].1 < deletes[*dependency].0, "{dependent} is deleted before {dependency} starts: {deletes:?}");
        }
    };

    // Part of the stack leaves the program: c and d go, d first.
    assert!(h.up(&program).await.unwrap().succeeded());
    let mark = h.cloud.timeline.lock().unwrap().len();
    let smaller = move |s: &mut Stack| -> ProgramResult {
        let a = s.register("a", named("del-a", "a".into()), Options::new())?;
        s.register("b", named("del-b", a.output::<String>("upper").into()), Options::new())?;
        s.register("e", named("del-e", "e".into()), Options::new())?;
        Ok(())
    };
    assert!(h.up(&smaller).await.unwrap().succeeded());
    let deletes = deletes_since(&h, mark);
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert_order(&deletes, &[("d", "c")]);

    // The whole stack: every dependent before what it depends on.
    assert!(h.up(&program).await.unwrap().succeeded());
    let mark = h.cloud.timeline.lock().unwrap().len();
    assert!(h.destroy().await.unwrap().succeeded());
    let deletes = deletes_since(&h, mark);
    assert_eq!(deletes.len(), 5, "{deletes:?}");
    assert_order(&deletes, &[("b", "a"), ("c", "b"), ("d", "a"), ("d", "c")]);
}

/// Each step starts as soon as its own dependencies finish, not when a whole level of the graph
/// has: `b` (after the quick `a`) starts while the slow, unrelated `x` is still being created.
#[tokio::test]
async fn a_step_starts_when_its_own_dependencies_finish() {
    let h = Harness::new();
    *h.cloud.latency.lock().unwrap() = Duration::from_millis(20);
    h.cloud.slow.lock().unwrap().insert("slow-x".into(), Duration::from_millis(800));
    let program = |s: &mut Stack| -> ProgramResult {
        s.register("x", Thing { name: Some("slow-x".to_string().into()), ..Thing::value("x") }, Options::new())?;
        let a = s.register("a2", Thing { name: Some("quick-a2".to_string().into()), ..Thing::value("a2") }, Options::new())?;
        s.register(
            "b",
            Thing { name: Some("then-b".to_string().into()), value: a.output::<String>("upper").into(), ..Thing::default() },
            Options::new(),
        )?;
        Ok(())
    };
    assert!(h.up(&program).await.unwrap().succeeded());
    let timeline = h.cloud.timeline.lock().unwrap().clone();
    let at = |event: &str| timeline.iter().position(|e| e == event).unwrap_or_else(|| panic!("{event} in {timeline:?}"));
    assert!(at("end create quick-a2") < at("start create then-b"), "b waits for its dependency: {timeline:?}");
    assert!(at("start create then-b") < at("end create slow-x"), "b does not wait for x: {timeline:?}");
}
