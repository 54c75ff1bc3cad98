//! The order stages run in: a topological order of their needs that keeps file order where it
//! can; an unknown need or a cycle is an error that names it (a cycle is printed).

use std::collections::{BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::{suggest, Diagnostic};
use crate::pipeline::load::StageDef;
use crate::pipeline::source::Source;

/// Stages in a topological order that keeps file order where it can (Kahn's algorithm with
/// the lowest file index first). Unknown needs and cycles are errors.
pub(super) fn order_stages(defs: &[StageDef], src: &Source) -> Result<Vec<usize>, Box<Diagnostic>> {
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..defs.len()).map(|i| g.add_node(i)).collect();
    let index: HashMap<&str, usize> = defs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    for (i, d) in defs.iter().enumerate() {
        for (k, n) in d.needs.iter().enumerate() {
            let Some(&u) = index.get(n.stage.as_str()) else {
                let others: Vec<&str> = names.iter().copied().filter(|x| *x != d.name).collect();
                return Err(Box::new(
                    src.at_value(
                        &format!("{}.needs.{k}", d.path),
                        format!("stage `{}` needs unknown stage `{}`", d.name, n.stage),
                    )
                    .with_hint(suggest(&n.stage, &others, "stages")),
                ));
            };
            g.update_edge(nodes[u], nodes[i], ());
        }
    }
    if petgraph::algo::toposort(&g, None).is_err() {
        // Report the cycle through the first stage (in file order) that is on one.
        let path = (0..defs.len())
            .find_map(|i| find_cycle(defs, &index, i))
            .expect("toposort found a cycle");
        let first = &defs[path[0]];
        let second = &defs[path[1 % path.len()]];
        let k = first
            .needs
            .iter()
            .position(|n| n.stage == second.name)
            .unwrap_or(0);
        let text = path
            .iter()
            .chain(std::iter::once(&path[0]))
            .map(|&i| defs[i].name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        return Err(Box::new(
            src.at_value(&format!("{}.needs.{k}", first.path), format!("the stages form a cycle: {text}"))
                .with_hint("each arrow reads \"needs\"; remove one of these `needs` so that the stages form a DAG"),
        ));
    }
    let mut indeg: Vec<usize> = defs
        .iter()
        .map(|d| {
            d.needs
                .iter()
                .map(|n| &n.stage)
                .collect::<BTreeSet<_>>()
                .len()
        })
        .collect();
    let mut done = Vec::new();
    let mut ready: BTreeSet<usize> = (0..defs.len()).filter(|&i| indeg[i] == 0).collect();
    while let Some(i) = ready.pop_first() {
        done.push(i);
        for (j, d) in defs.iter().enumerate() {
            if d.needs
                .iter()
                .map(|n| &n.stage)
                .collect::<BTreeSet<_>>()
                .contains(&defs[i].name)
            {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.insert(j);
                }
            }
        }
    }
    Ok(done)
}

/// A cycle through `start`, following `needs` edges: [start, needed-by-start, ...].
fn find_cycle(defs: &[StageDef], index: &HashMap<&str, usize>, start: usize) -> Option<Vec<usize>> {
    fn dfs(
        cur: usize,
        start: usize,
        defs: &[StageDef],
        index: &HashMap<&str, usize>,
        trail: &mut Vec<usize>,
        seen: &mut BTreeSet<usize>,
    ) -> bool {
        for n in &defs[cur].needs {
            let u = index[n.stage.as_str()];
            if u == start {
                return true;
            }
            if seen.insert(u) {
                trail.push(u);
                if dfs(u, start, defs, index, trail, seen) {
                    return true;
                }
                trail.pop();
            }
        }
        false
    }
    let mut trail = vec![start];
    let mut seen = BTreeSet::from([start]);
    dfs(start, start, defs, index, &mut trail, &mut seen).then_some(trail)
}
