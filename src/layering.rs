//! The layering of `lib.rs`, checked: no top-level module uses one that uses it back. Reads
//! the `crate::NAME` paths of every source file (comments stripped), so a new circle fails
//! the suite and names the modules in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its files name.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let top: BTreeSet<String> = std::fs::read_dir(src)
        .expect("src")
        .filter_map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_stem()?.to_str()?.to_owned();
            let module = p.is_dir() || p.extension().is_some_and(|x| x == "rs");
            (module && !["lib", "main", "testing"].contains(&name.as_str())).then_some(name)
        })
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &top {
        let mut files = Vec::new();
        let dir = src.join(m);
        if dir.is_dir() {
            collect(&dir, &mut files);
        } else {
            files.push(src.join(format!("{m}.rs")));
        }
        let deps = g.entry(m.clone()).or_default();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("source");
            for d in named_modules(&text) {
                if d != *m && top.contains(&d) {
                    deps.insert(d);
                }
            }
        }
    }
    g
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `a` in `crate::a::...` and every name in `crate::{a, b::c}`.
fn named_modules(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at the group's top level: the first, and each after a `,` there.
            let mut depth = 0;
            let mut at_name = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_name = true,
                    c if at_name && !c.is_whitespace() => {
                        out.push(ident(&group[j..]));
                        at_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// A cycle of the graph, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        path.push(m.to_owned());
        for d in g.get(m).into_iter().flatten() {
            match state.get(d) {
                Some(1) => {
                    let start = path.iter().position(|p| p == d).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(g, d, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if !state.contains_key(m)
            && let Some(c) = visit(g, m, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.len() > 10, "modules not found: {g:?}");
    assert!(
        g["poll"].contains("rules"),
        "the reader misses imports: {g:?}"
    );
    if let Some(c) = cycle(&g) {
        panic!("import circle: {}", c.join(" -> "));
    }
}

#[test]
fn the_checker_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    g.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cycle(&g).map(|c| c.join(" -> ")),
        Some("a -> b -> c -> a".to_owned())
    );
    assert_eq!(
        named_modules(
            "use crate::{alarms::{Change, Name}, model};\nlet x = crate::poll::y; // crate::z"
        ),
        ["alarms", "model", "poll"]
    );
}
