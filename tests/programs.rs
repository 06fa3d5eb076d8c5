//! Separate programs sharing the default cache directory, built for real with
//! cargo: two crates both named `app` whose `fn price` differ never share
//! entries, while the same code (a copy of a project in another directory)
//! does. The programs depend on this package as users do, by its registry
//! name or renamed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where the programs and their shared build live.
fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("programs")
}

/// How a program names this package in its `Cargo.toml`.
#[derive(Clone, Copy)]
enum Dependency {
    /// `cachier-rs = { path = .. }`, used as `cachier`.
    AsPublished,
    /// `cache = { package = "cachier-rs", path = .. }`, used as `cache`.
    Renamed,
}

/// Writes a crate named `app` at `dir` whose `main` prints `price(7)` and the
/// number of hits, with `code` defining the cached `fn price(item: u64) -> u64`
/// (see [`price`]), and builds it; returns the program.
///
/// The programs share one target directory, where cargo tells crates of one
/// name apart by their sources' times only: each is written just before it is
/// built, and its binary copied out at once.
fn build_app(dir: &Path, dependency: Dependency, code: &str) -> PathBuf {
    let _turn = turn();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let facade = env!("CARGO_MANIFEST_DIR");
    let package = env!("CARGO_PKG_NAME");
    let (line, library) = match dependency {
        Dependency::AsPublished => (format!("{package} = {{ path = {facade:?} }}"), "cachier"),
        Dependency::Renamed => (
            format!("cache = {{ package = {package:?}, path = {facade:?} }}"),
            "cache",
        ),
    };
    let manifest = format!(
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\n{line}\n\n[workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let main = format!(
        "use {library}::cachier;\n\n{code}\n\n\
         fn main() {{\n    let value = price(7);\n    println!(\"{{value}} hits={{}}\", price.cache_info().hits);\n}}\n"
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    // The facade's own lock file pins the versions, so the build needs no registry.
    std::fs::copy(Path::new(facade).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scratch().join("target"))
        .status()
        .unwrap();
    assert!(built.success(), "cannot build {}", dir.display());
    let program = dir.join("app");
    std::fs::copy(scratch().join("target/debug/app"), &program).unwrap();
    program
}

/// One build or run at a time: the builds share a target directory, and a
/// program written by one thread may not be run while another thread forks
/// (the child would hold it open for writing: "text file busy").
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A plain `#[cachier] fn price` with `body`.
fn price(body: &str) -> String {
    format!("#[cachier]\nfn price(item: u64) -> u64 {body}")
}

/// Runs `program` with `cache_dir` as `CACHIER_DIR`; returns what it printed.
fn run(program: &Path, cache_dir: &Path) -> String {
    let _turn = turn();
    let printed = support::stdout_of(Command::new(program).env("CACHIER_DIR", cache_dir));
    printed.trim().to_owned()
}

#[test]
fn two_crates_named_app_share_entries_only_when_their_code_is_the_same() {
    let cache = scratch().join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let one = build_app(
        &scratch().join("one"),
        Dependency::AsPublished,
        &price("{ item * 2 }"),
    );
    let two = build_app(
        &scratch().join("two"),
        Dependency::AsPublished,
        &price("{ item * 3 }"),
    );
    let moved = build_app(
        &scratch().join("elsewhere/one"),
        Dependency::Renamed,
        &price("{\n    // the same code, reformatted, in another directory\n    item *  2\n}"),
    );

    assert_eq!(run(&one, &cache), "14 hits=0");
    assert_eq!(
        run(&two, &cache),
        "21 hits=0",
        "the second program was served the first one's result"
    );
    assert_eq!(
        run(&one, &cache),
        "14 hits=1",
        "a program's own entries are served again"
    );
    assert_eq!(
        run(&moved, &cache),
        "14 hits=1",
        "the same code in another directory (with a renamed dependency) shares its entries"
    );
}

#[test]
fn an_edit_of_the_body_or_of_a_dependency_recomputes_and_a_comment_does_not() {
    let (project, cache) = (scratch().join("edited"), scratch().join("edited-cache"));
    let _ = std::fs::remove_dir_all(&cache);
    let app = |price: &str, helper: &str| {
        let code = format!(
            "#[cachier(deps = [helper])]\nfn price(item: u64) -> u64 {price}\n\n\
             #[cachier::track]\nfn helper(x: u64) -> u64 {helper}"
        );
        build_app(&project, Dependency::AsPublished, &code)
    };
    // Each step rebuilds the same project, as a developer does.
    let first = app("{ helper(item) }", "{ x * 2 }");
    assert_eq!(run(&first, &cache), "14 hits=0");
    assert_eq!(run(&first, &cache), "14 hits=1");
    let commented = app(
        "{\n    // the helper does it\n    helper( item )\n}",
        "{ /* double */ x * 2 }",
    );
    assert_eq!(
        run(&commented, &cache),
        "14 hits=1",
        "comments and spacing are not code"
    );
    let edited = app("{ helper(item) + 0 }", "{ x * 2 }");
    assert_eq!(run(&edited, &cache), "14 hits=0", "the body changed");
    let helper_edited = app("{ helper(item) + 0 }", "{ x + x }");
    assert_eq!(run(&helper_edited, &cache), "14 hits=0", "a dependency changed");
    assert_eq!(run(&helper_edited, &cache), "14 hits=1");
}

#[test]
fn a_version_given_by_hand_replaces_the_body_digest() {
    let (project, cache) = (scratch().join("versioned"), scratch().join("versioned-cache"));
    let _ = std::fs::remove_dir_all(&cache);
    let app = |version: &str, body: &str| {
        let code = format!("#[cachier(version = {version:?})]\nfn price(item: u64) -> u64 {body}");
        build_app(&project, Dependency::AsPublished, &code)
    };
    assert_eq!(run(&app("1", "{ item * 2 }"), &cache), "14 hits=0");
    assert_eq!(
        run(&app("1", "{ item + item }"), &cache),
        "14 hits=1",
        "a refactor under the same version keeps the cache"
    );
    assert_eq!(
        run(&app("2", "{ item + item }"), &cache),
        "14 hits=0",
        "a new version starts afresh"
    );
}
