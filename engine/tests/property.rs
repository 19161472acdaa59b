//! Property: for random dependency graphs, and random successive changes to them, `up` makes the
//! memory cloud match the program exactly, and planning again finds nothing to do.

mod support;

use std::collections::BTreeMap;

use berth_engine::{Input, Op, Options, ProgramResult, ResourceHandle, Stack};
use proptest::prelude::*;
use support::{Harness, Thing};

const NAMES: usize = 10;

#[derive(Clone, Debug)]
struct NodeSpec {
    name: usize,
    value: String,
    zone: Option<u8>,
    /// Use this earlier node's `upper` output as the value instead.
    reads: Option<usize>,
    /// Extra ordering edges to earlier nodes.
    after: Vec<usize>,
    fixed_name: bool,
}

fn program_strategy() -> impl Strategy<Value = Vec<NodeSpec>> {
    proptest::collection::vec(
        (
            0..NAMES,
            "[a-c]{1,2}",
            proptest::option::of(0u8..2),
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
            any::<bool>(),
            any::<bool>(),
        ),
        0..8,
    )
    .prop_map(|raw| {
        let mut seen = std::collections::HashSet::new();
        let mut nodes: Vec<NodeSpec> = Vec::new();
        for (name, value, zone, reads, after, use_read, fixed_name) in raw {
            if !seen.insert(name) {
                continue;
            }
            let n = nodes.len();
            let reads = (use_read && n > 0).then(|| reads.index(n));
            let after = if n > 0 { after.iter().map(|i| i.index(n)).collect() } else { Vec::new() };
            nodes.push(NodeSpec { name, value, zone, reads, after, fixed_name });
        }
        nodes
    })
}

fn name(i: usize) -> String {
    format!("n{i}")
}

fn run(spec: &[NodeSpec], stack: &mut Stack) -> ProgramResult {
    let mut handles: Vec<ResourceHandle<Thing>> = Vec::new();
    for node in spec {
        let value: Input<String> = match node.reads {
            Some(i) => handles[i].output::<String>("upper").into(),
            None => node.value.clone().into(),
        };
        let mut options = Options::new();
        for &i in &node.after {
            options = options.depends_on(&handles[i]);
        }
        let thing = Thing {
            name: node.fixed_name.then(|| format!("fixed-{}", name(node.name)).into()),
            value,
            zone: node.zone.map(|z| format!("z{z}")),
            ..Thing::default()
        };
        handles.push(stack.register(&name(node.name), thing, options)?);
    }
    Ok(())
}

/// The cloud holds exactly the program's resources, with the values it asks for.
fn assert_matches(h: &Harness, spec: &[NodeSpec]) -> Result<(), TestCaseError> {
    let objects = h.cloud.objects();
    prop_assert_eq!(objects.len(), spec.len(), "objects: {:?}", objects);
    let by_urn: BTreeMap<String, _> = objects.iter().map(|o| (o.urn.clone(), o.clone())).collect();
    prop_assert_eq!(by_urn.len(), objects.len(), "a resource exists twice");
    let mut values: Vec<String> = Vec::new();
    for node in spec {
        let urn = berth_engine::Urn::new("test", None, "mem:index:Thing", &name(node.name)).unwrap();
        let object = by_urn.get(urn.as_str()).ok_or_else(|| TestCaseError::fail(format!("{urn} missing")))?;
        let expected = match node.reads {
            Some(i) => values[i].to_uppercase(),
            None => node.value.clone(),
        };
        prop_assert_eq!(&object.value, &expected, "{}", urn);
        prop_assert_eq!(object.zone.clone(), node.zone.map(|z| format!("z{z}")));
        values.push(expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn up_converges_and_replans_to_nothing(generations in proptest::collection::vec(program_strategy(), 1..4)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let h = Harness::new();
            for spec in &generations {
                let program = |s: &mut Stack| run(spec, s);
                let outcome = h.up(&program).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(outcome.succeeded(), "{:?}", outcome.report.map(|r| r.outcomes));
                assert_matches(&h, spec)?;
                h.cloud.clear_calls();
                let again = h.preview(&program).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(again.steps.iter().all(|s| s.op == Op::Same), "replan: {:?}", again.steps.iter().map(|s| (s.name(), s.op)).collect::<Vec<_>>());
                let noop = h.up(&program).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(noop.report.is_none());
                prop_assert_eq!(h.cloud.mutating_calls(), 0);
            }
            let destroyed = h.destroy().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(destroyed.succeeded());
            prop_assert!(h.cloud.objects().is_empty());
            Ok(())
        })?;
    }
}
