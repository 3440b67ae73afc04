//! Which services `up` runs, and in which order: the ones asked for (every
//! managed service when none is named) plus every managed service they
//! depend on or imply, transitively. A cycle among them is refused.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::plan::Plan;

/// The managed services to run, sorted by name; with the managed
/// dependencies of each (`depends-on` plus implications).
pub fn select(plan: &Plan, requested: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut todo: Vec<String> = if requested.is_empty() {
        plan.services
            .iter()
            .filter(|s| s.runtime().is_some())
            .map(|s| s.name.clone())
            .collect()
    } else {
        for r in requested {
            let Some(s) = plan.service(r) else {
                return Err(unknown(plan, r));
            };
            if s.runtime().is_none() {
                return Err(Error::config(format!(
                    "service `{r}` is external (profile `{}`): it runs elsewhere, and `up` cannot start it",
                    s.profile
                ))
                .with_help(format!(
                    "choose a managed profile for `{r}`, or leave it out of `up`"
                )));
            }
        }
        requested.to_vec()
    };
    let mut out = BTreeMap::new();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(s) = plan.service(&name) else {
            continue;
        };
        let deps: Vec<String> = s
            .depends_on
            .iter()
            .filter(|d| plan.service(d).is_some_and(|d| d.runtime().is_some()))
            .cloned()
            .collect();
        todo.extend(deps.iter().cloned());
        out.insert(name, deps);
    }
    if let Some(cycle) = find_cycle(&out) {
        return Err(Error::config(format!(
            "the services to start depend on each other in a cycle: {}",
            cycle.join(" → ")
        ))
        .with_help("a service waits for its dependencies to be ready; remove one `depends-on` or `service:` implication of the cycle"));
    }
    if out.is_empty() {
        return Err(
            Error::config("no managed service is selected: `up` has nothing to start")
                .with_help("select a service with `cargo hsm service add NAME`"),
        );
    }
    Ok(out)
}

/// The error for a service name that is not selected, listing those that are.
pub fn unknown(plan: &Plan, name: &str) -> Error {
    let selected: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    Error::config(format!("no selected service is named `{name}`")).with_help(
        if selected.is_empty() {
            "no service is selected; select one with `cargo hsm service add NAME`".to_string()
        } else {
            format!("the selected services are: {}", selected.join(", "))
        },
    )
}

/// A cycle, as the names along it with the first repeated at the end.
fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        graph: &'a BTreeMap<String, Vec<String>>,
        done: &mut BTreeSet<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut c: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn cycles_are_named_along_their_edges() {
        assert_eq!(
            find_cycle(&g(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])])),
            None
        );
        assert_eq!(
            find_cycle(&g(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            find_cycle(&g(&[("a", &["a"])])),
            Some(vec!["a".into(), "a".into()])
        );
    }
}
