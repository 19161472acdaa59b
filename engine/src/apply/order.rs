//! The execution graph: which step waits for which.

use std::collections::HashMap;

use crate::apply::StepStatus;
use crate::plan::{Op, Step};
use crate::program::DesiredResource;
use crate::urn::Urn;

/// Which half of a step a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The step itself (for a replacement: creating the new resource).
    Main,
    /// For a replacement: deleting the old resource.
    DeleteOld,
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub step: usize,
    pub phase: Phase,
    pub deps: Vec<usize>,
    pub dependents: Vec<usize>,
}

impl Node {
    /// Whether running the node calls the provider (and so counts against `--parallel`).
    pub fn calls_provider(&self, steps: &[Step]) -> bool {
        let step = &steps[self.step];
        step.custom && (step.op != Op::Same) && !(step.op == Op::Delete && step.retain)
    }
}

/// Builds the nodes and their edges.
///
/// - A step waits for the steps of the resources it depends on (a replaced dependency: its new
///   incarnation).
/// - Replacing create-before-delete: the old is deleted after the new exists and every resource
///   depending on it has moved over.
/// - Replacing delete-before-create: the new is created after the old is deleted, which waits
///   for the deletion of whatever depended on the old.
/// - Deleting a resource waits for every step of a resource that depended on it in state
///   (dependents go first: reverse dependency order).
pub(crate) fn build(steps: &[Step], desired: &HashMap<Urn, DesiredResource>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut main: HashMap<&Urn, usize> = HashMap::new();
    let mut delete_old: HashMap<&Urn, usize> = HashMap::new();
    let mut deletes: HashMap<&Urn, Vec<usize>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let index = nodes.len();
        nodes.push(Node { step: i, phase: Phase::Main, deps: Vec::new(), dependents: Vec::new() });
        if step.op == Op::Delete {
            deletes.entry(&step.urn).or_default().push(index);
        } else {
            main.insert(&step.urn, index);
        }
        if step.op == Op::Replace {
            delete_old.insert(&step.urn, nodes.len());
            nodes.push(Node { step: i, phase: Phase::DeleteOld, deps: Vec::new(), dependents: Vec::new() });
        }
    }
    // (node, waits for, softness): softness 0 edges are the program's dependencies and can never
    // be dropped; higher ones only order deletes and are dropped, softest first, if together
    // they would form a cycle.
    let mut edges: Vec<(usize, usize, u8)> = Vec::new();
    // Desired dependencies.
    for (urn, &node) in &main {
        let Some(d) = desired.get(*urn) else { continue };
        for dep in &d.dependencies {
            if let Some(&m) = main.get(dep) {
                edges.push((node, m, 0));
            }
        }
        let step = &steps[nodes[node].step];
        if step.op == Op::Replace {
            let old = delete_old[urn];
            if step.delete_before_replace {
                edges.push((node, old, 0));
            } else {
                edges.push((old, node, 0));
            }
        }
    }
    // Create-before-delete: the old incarnation goes after its dependents have moved over.
    for (urn, &old) in &delete_old {
        let step = &steps[nodes[old].step];
        if step.delete_before_replace {
            continue;
        }
        for (other, d) in desired {
            if d.dependencies.contains(urn)
                && let Some(&m) = main.get(other)
            {
                edges.push((old, m, 1));
            }
        }
    }
    // Reverse dependency order for everything that removes an old resource.
    let removers: Vec<(usize, &Urn)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| steps[n.step].op == Op::Delete || n.phase == Phase::DeleteOld)
        .map(|(i, n)| (i, &steps[n.step].urn))
        .collect();
    let mut recorded_dependents: HashMap<&Urn, Vec<usize>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if let Some(old) = &step.old {
            for dep in &old.dependencies {
                recorded_dependents.entry(dep).or_default().push(i);
            }
        }
    }
    for (remover, urn) in removers {
        for &dependent_step in recorded_dependents.get(urn).map(Vec::as_slice).unwrap_or(&[]) {
            let dependent = &steps[dependent_step];
            if &dependent.urn == urn {
                continue;
            }
            match dependent.op {
                Op::Delete => {
                    for &n in deletes.get(&dependent.urn).map(Vec::as_slice).unwrap_or(&[]) {
                        edges.push((remover, n, 1));
                    }
                }
                Op::Replace => {
                    edges.push((remover, delete_old[&dependent.urn], 2));
                    if !dependent.delete_before_replace {
                        edges.push((remover, main[&dependent.urn], 3));
                    }
                }
                _ => {
                    if let Some(&m) = main.get(&dependent.urn) {
                        // Only matters when the dependent drops the reference.
                        edges.push((remover, m, 3));
                    }
                }
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    edges.retain(|(a, b, _)| a != b);
    let mut limit = 3u8;
    while limit > 0 && has_cycle(nodes.len(), &edges) {
        edges.retain(|&(_, _, softness)| softness < limit);
        limit -= 1;
    }
    let keep: Vec<(usize, usize)> = edges.into_iter().map(|(a, b, _)| (a, b)).collect();
    for (a, b) in keep {
        nodes[a].deps.push(b);
        nodes[b].dependents.push(a);
    }
    nodes
}

fn has_cycle(n: usize, edges: &[(usize, usize, u8)]) -> bool {
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in edges {
        indegree[a] += 1;
        out[b].push(a);
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &j in &out[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                queue.push(j);
            }
        }
    }
    seen < n
}

/// Every node that waits, directly or not, for `start`.
pub(crate) fn transitive_dependents(nodes: &[Node], start: usize) -> Vec<usize> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = nodes[start].dependents.clone();
    let mut out = Vec::new();
    while let Some(i) = stack.pop() {
        if !seen[i] {
            seen[i] = true;
            out.push(i);
            stack.extend(nodes[i].dependents.iter().copied());
        }
    }
    out
}

/// The more serious of two outcomes (for a step made of two nodes).
pub(crate) fn worse(a: StepStatus, b: StepStatus) -> StepStatus {
    fn rank(s: &StepStatus) -> u8 {
        match s {
            StepStatus::Failed(_) => 4,
            StepStatus::Skipped(_) => 3,
            StepStatus::NotStarted => 2,
            StepStatus::Succeeded => 1,
            StepStatus::Unchanged => 0,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}
