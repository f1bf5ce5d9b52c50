//! Which vertices a solve needs, and in what order they can run.

use std::collections::{HashMap, HashSet};

use graph::Graph;
use oci::Digest;

use crate::error::SolveError;

/// The vertices the targets need, with their readiness bookkeeping.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Unresolved distinct inputs per vertex.
    waiting: HashMap<Digest, usize>,
    /// The needed vertices that use each vertex (each listed once).
    dependents: HashMap<Digest, Vec<Digest>>,
    /// Vertices with no inputs, in graph order.
    roots: Vec<Digest>,
}

impl Plan {
    pub fn new(graph: &Graph, targets: &[Digest]) -> Result<Plan, SolveError> {
        let mut needed = HashSet::new();
        let mut stack = Vec::new();
        for target in targets {
            if graph.get(target).is_none() {
                return Err(SolveError::UnknownTarget {
                    digest: target.clone(),
                });
            }
            stack.push(target.clone());
        }
        while let Some(digest) = stack.pop() {
            if !needed.insert(digest.clone()) {
                continue;
            }
            let vertex = graph
                .get(&digest)
                .expect("invariant: only digests found in the graph are pushed");
            for input in &vertex.inputs {
                if graph.get(input).is_none() {
                    return Err(SolveError::UnknownInput {
                        vertex: digest.clone(),
                        input: input.clone(),
                    });
                }
                stack.push(input.clone());
            }
        }
        let mut plan = Plan {
            waiting: HashMap::new(),
            dependents: HashMap::new(),
            roots: Vec::new(),
        };
        for (digest, vertex) in graph.vertices().filter(|(d, _)| needed.contains(*d)) {
            let distinct: HashSet<&Digest> = vertex.inputs.iter().collect();
            for input in &distinct {
                plan.dependents
                    .entry((*input).clone())
                    .or_default()
                    .push(digest.clone());
            }
            if distinct.is_empty() {
                plan.roots.push(digest.clone());
            }
            plan.waiting.insert(digest.clone(), distinct.len());
        }
        Ok(plan)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The vertices that can start at once.
    pub fn take_roots(&mut self) -> Vec<Digest> {
        std::mem::take(&mut self.roots)
    }

    /// `digest` is resolved: the dependents that became ready.
    pub fn resolved(&mut self, digest: &Digest) -> Vec<Digest> {
        let mut ready = Vec::new();
        for dependent in self.dependents.get(digest).into_iter().flatten() {
            let left = self
                .waiting
                .get_mut(dependent)
                .expect("invariant: dependents are needed vertices");
            *left -= 1;
            if *left == 0 {
                ready.push(dependent.clone());
            }
        }
        ready
    }
}
