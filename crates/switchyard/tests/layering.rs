//! The house's arrows, checked from the sources (issue 11):
//! - crates depend one way: `switchyard -> console -> server -> events -> engine ->
//!   {elements, ceql, xmlrpc, store, vault, transform}`, and the simulators on none of them
//!   (they are the vendor);
//! - no `use crate::` cycle among the modules of `server` or `engine`.
//!
//! Module edges are read from the text: `crate::a::b`, `super::x`, `use crate::{a,
//! b::{c, d}}` and a child module named from its parent (`list::list(..)`). The
//! crate root (`lib.rs`) composes the modules and re-exports their items, so it is
//! left out; so are `#[cfg(test)]` modules and comment lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The `switchyard-*` crates a crate's `[dependencies]` names (dev-dependencies aside).
fn platform_dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        if section == "[dependencies]" {
            if let Some(name) = line.split(['=', ' ']).next().filter(|n| n.starts_with("switchyard-")) {
                out.insert(name.trim_start_matches("switchyard-").to_owned());
            }
        }
    }
    out
}

#[test]
fn crates_depend_one_way() {
    // Each crate may use only crates of lower layers (the last layer may use its own).
    let layers: &[&[&str]] = &[&["switchyard"], &["console"], &["server"], &["events"], &["engine"], &["elements", "ceql", "xmlrpc", "store", "vault", "transform"]];
    let layer_of = |c: &str| layers.iter().position(|l| l.contains(&c));
    for (i, layer) in layers.iter().enumerate() {
        for krate in layer.iter() {
            for dep in platform_dependencies(krate) {
                let Some(j) = layer_of(&dep) else {
                    assert_eq!(dep, "simulators", "{krate} depends on unknown crate {dep}");
                    assert_eq!(*krate, "switchyard", "only the binary may run the simulators ({krate} uses them)");
                    continue;
                };
                assert!(j > i || (j == i && i == layers.len() - 1), "{krate} -> {dep} points up or sideways");
            }
        }
    }
    assert!(platform_dependencies("engine").contains("xmlrpc") && platform_dependencies("events").contains("engine"));
    assert!(platform_dependencies("console").contains("server") && !platform_dependencies("server").contains("console"));
    assert!(platform_dependencies("simulators").is_empty(), "the simulators share no code with the platform");
}

/// Module path (`hub::list`) of each source file of a crate, with its text
/// (tests cut off).
fn modules(krate: &str) -> BTreeMap<String, String> {
    let src = workspace().join("crates").join(krate).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod ") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            // Comments (docs included) name paths without using them.
            let text: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The paths a `use` tree names: `{a::{b, c}, d}` gives `a::b`, `a::c`, `d`.
fn expand_use_tree(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use_tree(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use_tree(&inner[start..], prefix, out);
        return;
    }
    match tree.find("::{") {
        Some(at) => expand_use_tree(&tree[at + 2..], &join(prefix, &tree[..at]), out),
        None if !tree.is_empty() => out.push(join(prefix, tree.split_whitespace().next().unwrap_or(""))),
        None => {}
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b == "self") {
        (true, _) => b.to_owned(),
        (false, true) => a.to_owned(),
        (false, false) => format!("{a}::{b}"),
    }
}

/// Every module `module` refers to, by the longest known module path.
fn edges(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut paths = Vec::new();
    // `use crate::{...};` and `use super::{...};` trees.
    for (marker, base) in [("use crate::", ""), ("use super::", parent)] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            let tail = &rest[at + marker.len()..];
            let end = tail.find(';').unwrap_or(tail.len());
            expand_use_tree(&tail[..end].replace('\n', " "), base, &mut paths);
            rest = &tail[end..];
        }
    }
    // Paths in expressions and types: `crate::a::b`, `super::a`, `child::item`.
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("::") {
        let start = text[..i].rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |p| p + 1);
        if start > 0 && bytes[start - 1] == b':' {
            continue; // not the head of a path
        }
        let head = &text[start..i];
        let path_end = text[i..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(text.len(), |p| i + p);
        let rest = text[i + 2..path_end].trim_end_matches(':');
        match head {
            "crate" => paths.push(rest.to_owned()),
            "super" => paths.push(join(parent, rest)),
            child if known.contains(&join(module, child)) => paths.push(join(module, &format!("{child}::{rest}"))),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let target = (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| known.contains(m));
        if let Some(target) = target.filter(|t| !t.is_empty() && t != module) {
            out.insert(target);
        }
    }
    out
}

/// A cycle among the modules, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn module_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(krate);
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, text)| (m.clone(), edges(m, text, &known).into_iter().filter(|t| !t.is_empty()).collect()))
        .collect()
}

#[test]
fn no_module_cycles_in_the_server_or_the_engine() {
    for krate in ["server", "engine", "console"] {
        let graph = module_graph(krate);
        assert!(graph.len() > 5, "{krate}: modules were read: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: modules use each other in a circle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_check_sees_every_kind_of_reference() {
    let known: BTreeSet<String> = ["hub", "hub::list", "oauth", "vendor", "calls"].iter().map(|s| s.to_string()).collect();
    let text = "use crate::{calls::{render, log_entry}, oauth};\nuse super::x;\nfn f() { list::list(); crate::vendor::Vendor::new(); }";
    assert_eq!(edges("hub", text, &known), ["calls", "hub::list", "oauth", "vendor"].iter().map(|s| s.to_string()).collect());
    assert_eq!(edges("hub::list", "use super::call::{HubAnswer};", &known), ["hub"].iter().map(|s| s.to_string()).collect());
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().clear();
    assert!(find_cycle(&graph).is_none());
}
