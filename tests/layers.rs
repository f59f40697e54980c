//! The module layers of `src/` (docs/architecture.md): every top-level module sits in one layer,
//! imports only modules of its own layer or below, and no import cycle joins top-level modules.
//! Read from the code's own `crate::` and `super::` paths (`use` items, paths in code and inside
//! macro calls), parsed with `syn`, so a grouped or multi-line `use` is read as the compiler
//! reads it. A failure names the offending arrow and the files behind it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Top to bottom. A module imports only modules of its own layer or a layer below, and within
/// a layer the imports form no cycle.
const LAYERS: &[(&str, &[&str])] = &[
    ("entry points", &["cli", "dev", "app"]),
    ("edge", &["console", "worker"]),
    ("http", &["http"]),
    (
        "capabilities",
        &[
            "campaigns",
            "doctor",
            "tracking",
            "lists",
            "inbound",
            "bounces",
            "events",
            "verification",
            "validation",
            "keys",
            "hooks",
        ],
    ),
    ("providers and rendering", &["providers", "render"]),
    (
        "platform",
        &[
            "store",
            "queue",
            "metrics",
            "telemetry",
            "shutdown",
            "config",
        ],
    ),
    ("domain", &["domain"]),
];

/// Where one arrow comes from: the files that take a name from the other module.
type Arrows = BTreeMap<(String, String), BTreeSet<String>>;

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    fs::read_dir(src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            if path.is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "lib" && stem != "main").then(|| stem.to_owned())
            }
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/http/mod.rs` is `[http]`, `src/http/emails.rs` is
/// `[http, emails]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_str().unwrap().to_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// Collects the top-level module each `crate::`/`super::` path of one file lands in.
struct Reader<'a> {
    modules: &'a BTreeSet<String>,
    /// The module path of the code being read (grows inside inline `mod x { … }`).
    here: Vec<String>,
    found: BTreeSet<String>,
}

impl Reader<'_> {
    /// Resolves a path given as its segments' names; records the top-level module it names.
    fn resolve(&mut self, segments: &[String]) {
        let mut at = self.here.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            _ => return,
        }
        let top = at.first().or_else(|| rest.first());
        if let Some(top) = top.filter(|t| self.modules.contains(*t)) {
            self.found.insert(top.clone());
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                prefix.push(name.ident.to_string());
                self.resolve(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(rename) => {
                prefix.push(rename.ident.to_string());
                self.resolve(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.resolve(prefix),
            syn::UseTree::Group(group) => {
                for item in &group.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    /// `crate :: name` inside a macro call's tokens (`format!`, `json!`, `tracing::warn!`).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" || ident == "super" => {
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (trees.get(j), trees.get(j + 1))
                    {
                        let Some(TokenTree::Ident(next)) = trees.get(j + 2) else {
                            break;
                        };
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.resolve(&segments);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Reader<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.here.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.here.pop();
    }
}

fn arrows(src: &Path, modules: &BTreeSet<String>) -> Arrows {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut arrows = Arrows::new();
    for file in files {
        let here = module_path(src, &file);
        let Some(from) = here.first().cloned().filter(|m| modules.contains(m)) else {
            continue; // lib.rs and main.rs: the crate root and the binary
        };
        let text = fs::read_to_string(&file).unwrap();
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut reader = Reader {
            modules,
            here,
            found: BTreeSet::new(),
        };
        reader.visit_file(&syntax);
        for to in reader.found.into_iter().filter(|to| *to != from) {
            let shown = file.strip_prefix(src.parent().unwrap()).unwrap();
            arrows
                .entry((from.clone(), to))
                .or_default()
                .insert(shown.display().to_string());
        }
    }
    arrows
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(modules: &BTreeSet<String>, arrows: &Arrows) -> Vec<Vec<String>> {
    struct Search<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut Search<'a>, v: &'a str) {
        let number = s.index.len();
        s.index.insert(v, number);
        s.low.insert(v, number);
        s.stack.push(v);
        for w in s.next.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut search = Search {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for (from, to) in arrows.keys() {
        search.next.entry(from).or_default().push(to);
    }
    for module in modules {
        if !search.index.contains_key(module.as_str()) {
            visit(&mut search, module);
        }
    }
    search.found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_top_level_module_has_a_layer() {
    let unplaced: Vec<String> = top_level_modules(&src())
        .into_iter()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "put these modules in a layer of tests/layers.rs and docs/architecture.md: {unplaced:?}"
    );
}

#[test]
fn no_import_cycle_joins_top_level_modules() {
    let src = src();
    let modules = top_level_modules(&src);
    let arrows = arrows(&src, &modules);
    let found = cycles(&modules, &arrows);
    let mut report = String::new();
    for cycle in &found {
        report.push_str(&format!("\ncycle: {}\n", cycle.join(", ")));
        for ((from, to), files) in &arrows {
            if cycle.contains(from) && cycle.contains(to) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                report.push_str(&format!("  {from} -> {to}: {}\n", files.join(", ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:{report}"
    );
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let src = src();
    let modules = top_level_modules(&src);
    let mut upward = Vec::new();
    for ((from, to), files) in arrows(&src, &modules) {
        let (Some(low), Some(high)) = (layer_of(&from), layer_of(&to)) else {
            continue; // named by every_top_level_module_has_a_layer
        };
        if high < low {
            let files: Vec<String> = files.into_iter().collect();
            upward.push(format!(
                "{from} ({}) -> {to} ({}): {}",
                LAYERS[low].0,
                LAYERS[high].0,
                files.join(", ")
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "imports that climb to a higher layer:\n{}",
        upward.join("\n")
    );
}

/// The reader itself: a grouped, nested `use`, a `super::` that leaves a module and a path in
/// a macro call are all read; a path that stays inside its module is not an arrow.
#[test]
fn the_reader_follows_use_groups_super_paths_and_macro_tokens() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
    let code = r#"
        use crate::{b::{x, y}, c};
        use super::super::d::Thing;
        use super::sibling::Item;
        fn f() { tracing::warn!("{}", crate::e::name()); }
    "#;
    let mut reader = Reader {
        modules: &modules,
        here: vec!["a".into(), "inner".into()],
        found: BTreeSet::new(),
    };
    reader.visit_file(&syn::parse_file(code).unwrap());
    assert_eq!(
        reader.found,
        ["a", "b", "c", "d", "e"].map(String::from).into()
    );
}

/// Campaigns speak only the provider's batch interface: adding a provider must not touch them.
#[test]
fn campaigns_name_no_provider_outside_their_comments() {
    let mut files = Vec::new();
    rust_files(&src().join("campaigns"), &mut files);
    let mut named = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for name in ["SendGrid", "Smtp", "Outbox", "Provider::", "sendgrid"] {
                if code.contains(name) && !code.contains("MAILROOM_SENDGRID_GROUPS") {
                    named.push(format!("{}:{}: {name}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        named.is_empty(),
        "campaigns name a provider:\n{}",
        named.join("\n")
    );
}
