//! The crate's modules read bottom-up (STYLE.md; issue 14 broke the last cycles): no module
//! reaches back to one that depends on it. This reads `src/` and fails with the cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The top-level module each file of `src/` belongs to, with the crate modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let module_of = |path: &Path| {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        first.to_str().unwrap().trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let text = fs::read_to_string(file).unwrap();
        let deps = graph.entry(from.clone()).or_default();
        for name in named_modules(&text) {
            if name != from && modules.contains(&name) {
                deps.insert(name);
            }
        }
    }
    graph.remove("lib"); // the front page declares every module
    graph
}

/// Every `crate::name` and every `name` in a `use crate::{...}` group.
fn named_modules(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's own items: top-level names only, nested `{...}` groups skipped.
            let (mut depth, mut item_start) = (0, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.push(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
    }
    names
}

#[test]
fn no_module_reaches_back_to_a_module_that_uses_it() {
    let graph = graph();
    assert!(graph.contains_key("table") && graph.contains_key("flight"));
    for (from, deps) in &graph {
        // Depth-first from each dependency: reaching `from` again is a cycle.
        let mut stack: Vec<Vec<&String>> = deps.iter().map(|d| vec![from, d]).collect();
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            assert!(last != from, "import cycle: {path:?}");
            if !seen.insert(last) {
                continue;
            }
            for next in graph.get(last).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(next);
                stack.push(longer);
            }
        }
    }
}
