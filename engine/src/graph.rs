//! The desired resource graph: dependency order and cycle detection.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::fmt;

use crate::program::{DesiredResource, Export};
use crate::urn::Urn;

/// What is wrong with a program's graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{urn} depends on {missing}, which the program does not register")]
    MissingDependency { urn: Urn, missing: Urn },
    #[error("dependency cycle: {}", CycleText(.cycle))]
    Cycle {
        /// The resources in the cycle, each depending on the next; the last depends on the first.
        cycle: Vec<Urn>,
    },
}

struct CycleText<'a>(&'a [Urn]);

impl fmt::Display for CycleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for urn in self.0 {
            write!(f, "{} ({}) → ", urn.name(), urn.type_token())?;
        }
        match self.0.first() {
            Some(first) => write!(f, "{} ({})", first.name(), first.type_token()),
            None => Ok(()),
        }
    }
}

/// The program's resources in dependency order (every resource after what it depends on;
/// otherwise in registration order).
pub struct DesiredGraph {
    resources: Vec<DesiredResource>,
    index: HashMap<Urn, usize>,
    dependents: Vec<Vec<usize>>,
    exports: Vec<Export>,
}

impl DesiredGraph {
    pub fn new(resources: Vec<DesiredResource>, exports: Vec<Export>) -> Result<DesiredGraph, GraphError> {
        let registered: HashMap<Urn, usize> = resources.iter().enumerate().map(|(i, r)| (r.urn.clone(), i)).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); resources.len()];
        let mut remaining: Vec<usize> = vec![0; resources.len()];
        for (i, r) in resources.iter().enumerate() {
            for dep in &r.dependencies {
                let Some(&d) = registered.get(dep) else {
                    return Err(GraphError::MissingDependency { urn: r.urn.clone(), missing: dep.clone() });
                };
                dependents[d].push(i);
                remaining[i] += 1;
            }
        }
        // Kahn's algorithm, taking the earliest-registered ready resource first so the order is
        // stable and reads like the program.
        let mut ready: BinaryHeap<Reverse<usize>> =
            remaining.iter().enumerate().filter(|(_, n)| **n == 0).map(|(i, _)| Reverse(i)).collect();
        let mut order = Vec::with_capacity(resources.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push(Reverse(d));
                }
            }
        }
        if order.len() < resources.len() {
            let cycle = find_cycle(&resources, &registered, &remaining);
            return Err(GraphError::Cycle { cycle });
        }
        let mut slots: Vec<Option<DesiredResource>> = resources.into_iter().map(Some).collect();
        let sorted: Vec<DesiredResource> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let index: HashMap<Urn, usize> = sorted.iter().enumerate().map(|(i, r)| (r.urn.clone(), i)).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); sorted.len()];
        for (i, r) in sorted.iter().enumerate() {
            for dep in &r.dependencies {
                dependents[index[dep]].push(i);
            }
        }
        Ok(DesiredGraph { resources: sorted, index, dependents, exports })
    }

    /// Resources in dependency order.
    pub fn resources(&self) -> &[DesiredResource] {
        &self.resources
    }

    pub fn get(&self, urn: &Urn) -> Option<&DesiredResource> {
        self.index.get(urn).map(|&i| &self.resources[i])
    }

    pub fn position(&self, urn: &Urn) -> Option<usize> {
        self.index.get(urn).copied()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// `roots` and everything that depends on them, directly or not.
    pub fn with_dependents(&self, roots: &BTreeSet<Urn>) -> BTreeSet<Urn> {
        let mut seen: BTreeSet<Urn> = BTreeSet::new();
        let mut stack: Vec<usize> = roots.iter().filter_map(|u| self.index.get(u).copied()).collect();
        while let Some(i) = stack.pop() {
            if seen.insert(self.resources[i].urn.clone()) {
                stack.extend(self.dependents[i].iter().copied());
            }
        }
        seen
    }
}

/// A cycle among the resources Kahn's algorithm could not order, in dependency order.
fn find_cycle(resources: &[DesiredResource], registered: &HashMap<Urn, usize>, remaining: &[usize]) -> Vec<Urn> {
    let stuck: Vec<usize> = (0..resources.len()).filter(|&i| remaining[i] > 0).collect();
    // Walk dependencies among stuck nodes until a node repeats: every stuck node has a stuck
    // dependency, so the walk must close a loop.
    let Some(&start) = stuck.first() else { return Vec::new() };
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut current = start;
    loop {
        if let Some(&at) = position.get(&current) {
            return path[at..].iter().map(|&i| resources[i].urn.clone()).collect();
        }
        position.insert(current, path.len());
        path.push(current);
        let next = resources[current].dependencies.iter().filter_map(|d| registered.get(d).copied()).find(|&d| remaining[d] > 0);
        match next {
            Some(n) => current = n,
            None => return path.iter().map(|&i| resources[i].urn.clone()).collect(),
        }
    }
}
