//! The `synthetic` stack program: `count` nodes, each depending on up to `deps` earlier ones
//! (chosen by a seeded generator, so the same config always gives the same graph).

use std::collections::BTreeMap;

use berth_engine::{Input, Options, ProgramResult, ResourceHandle, Stack};
use serde::Deserialize;

use crate::cloud::Node;

/// `config:` of a synthetic stack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    pub count: usize,
    #[serde(default = "default_deps")]
    pub deps: usize,
    #[serde(default)]
    pub seed: u64,
    /// Dependencies are drawn from the `window` nodes before each one (0: from all).
    #[serde(default)]
    pub window: usize,
    #[serde(default = "default_value")]
    pub value: String,
    /// Padding labels per node, for realistic state sizes.
    #[serde(default)]
    pub labels: usize,
    /// Group nodes under components of this many children (0: no components).
    #[serde(default)]
    pub group: usize,
    /// Another stack whose `last_id` output the first node reads (a stack reference).
    #[serde(default)]
    pub upstream: Option<String>,
}

fn default_deps() -> usize {
    2
}

fn default_value() -> String {
    "v1".into()
}

/// The dependency lists of a synthetic graph: `graph[i]` are the earlier nodes `i` reads.
pub fn graph(count: usize, deps: usize, window: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let low = if window == 0 { 0 } else { i.saturating_sub(window) };
            let span = i - low;
            let mut chosen: Vec<usize> = Vec::new();
            for _ in 0..deps.min(span) {
                let j = low + (next() as usize % span);
                if !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            chosen.sort_unstable();
            chosen
        })
        .collect()
}

/// The longest chain of nodes in the graph (what bounds a parallel apply).
pub fn critical_path(graph: &[Vec<usize>]) -> usize {
    let mut depth = vec![0usize; graph.len()];
    for (i, deps) in graph.iter().enumerate() {
        depth[i] = 1 + deps.iter().map(|&d| depth[d]).max().unwrap_or(0);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// The program.
pub fn synthetic(stack: &mut Stack) -> ProgramResult {
    let config: SyntheticConfig = stack.config()?;
    let shape = graph(config.count, config.deps, config.window, config.seed);
    let upstream: Option<berth_engine::Output<String>> = match &config.upstream {
        Some(name) => Some(stack.reference(name)?.output("last_id")?),
        None => None,
    };
    let labels: BTreeMap<String, String> =
        (0..config.labels).map(|k| (format!("label-{k}"), format!("value-{k}-of-the-synthetic-stack"))).collect();
    let mut handles: Vec<ResourceHandle<Node>> = Vec::with_capacity(config.count);
    let register = |stack: &mut Stack, i: usize, handles: &mut Vec<ResourceHandle<Node>>| -> ProgramResult {
        let node = Node {
            value: format!("{}-{i}", config.value).into(),
            inputs: match (&upstream, i) {
                (Some(up), 0) => vec![Input::from(up.clone())],
                _ => shape[i].iter().map(|&d| Input::from(handles[d].output::<String>("id"))).collect(),
            },
            labels: labels.clone(),
        };
        handles.push(stack.register(&format!("node-{i:05}"), node, Options::new())?);
        Ok(())
    };
    if config.group == 0 {
        for i in 0..config.count {
            register(stack, i, &mut handles)?;
        }
    } else {
        for (g, start) in (0..config.count).step_by(config.group).enumerate() {
            stack.component("test:index:Group", &format!("group-{g:04}"), Options::new(), |stack, _| -> ProgramResult {
                for i in start..(start + config.group).min(config.count) {
                    register(stack, i, &mut handles)?;
                }
                Ok(())
            })?;
        }
    }
    if let Some(last) = handles.last() {
        stack.export("last_id", &last.output::<String>("id"));
    }
    stack.export_value("count", config.count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_are_deterministic_and_acyclic() {
        let a = graph(200, 3, 0, 42);
        assert_eq!(a, graph(200, 3, 0, 42));
        assert!(a.iter().enumerate().all(|(i, deps)| deps.iter().all(|&d| d < i)));
        assert_ne!(a, graph(200, 3, 0, 43));
        assert_eq!(critical_path(&[vec![], vec![0], vec![1], vec![0]]), 3);
    }
}
