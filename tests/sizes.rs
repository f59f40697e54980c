//! Sizes a reader can hold: no source file over 800 lines, no function over 80 (from `fn` to
//! its closing brace), across `src/`, `jobs/src/` and `bench/src/`, read with `syn`.
//!
//! A function may be longer when it is one table or one `match` over a protocol's cases and
//! its doc comment says so with `Long on purpose:` and why.

use std::{
    fs,
    path::{Path, PathBuf},
};

use syn::{spanned::Spanned, visit::Visit};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 80;

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

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "jobs/src", "bench/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let name = file.strip_prefix(root).unwrap().display().to_string();
            (name, fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// Every function with a body in one file: its name, its length in lines, and whether its doc
/// comment says it is long on purpose.
#[derive(Default)]
struct Functions(Vec<(String, usize, bool)>);

impl Functions {
    fn add(&mut self, name: String, attrs: &[syn::Attribute], from: usize, to: usize) {
        let said = attrs.iter().any(|a| {
            a.path().is_ident("doc")
                && a.meta
                    .require_name_value()
                    .is_ok_and(|nv| quote_of(&nv.value).contains("Long on purpose:"))
        });
        self.0.push((name, to + 1 - from, said));
    }
}

fn quote_of(expr: &syn::Expr) -> String {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => s.value(),
        _ => String::new(),
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let (from, to) = (f.sig.fn_token.span.start().line, f.block.span().end().line);
        self.add(f.sig.ident.to_string(), &f.attrs, from, to);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let (from, to) = (f.sig.fn_token.span.start().line, f.block.span().end().line);
        self.add(f.sig.ident.to_string(), &f.attrs, from, to);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            let (from, to) = (f.sig.fn_token.span.start().line, block.span().end().line);
            self.add(f.sig.ident.to_string(), &f.attrs, from, to);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .map(|(name, text)| (name, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_FILE_LINES)
        .map(|(name, lines)| format!("{name}: {lines} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn no_function_is_over_80_lines_but_the_ones_that_say_why() {
    let mut problems = Vec::new();
    for (file, text) in sources() {
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut functions = Functions::default();
        functions.visit_file(&parsed);
        for (name, lines, said) in functions.0 {
            if lines > MAX_FN_LINES && !said {
                problems.push(format!("{file}::{name}: {lines} lines"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_measures_a_function_from_fn_to_its_closing_brace() {
    let text = "/// Long on purpose: a table.\nfn a() {\n    let x = 1;\n}\n\nimpl T {\n    fn b(&self) {}\n}\n";
    let mut functions = Functions::default();
    functions.visit_file(&syn::parse_file(text).unwrap());
    assert_eq!(
        functions.0,
        [("a".to_owned(), 3, true), ("b".to_owned(), 1, false)]
    );
}
