//! The README's install lines name this package as the registry knows it, so a
//! user who copies them gets this crate and not another one named `cachier`.

const README: &str = include_str!("../README.md");
const PACKAGE: &str = env!("CARGO_PKG_NAME");

/// Every line of the README that adds or declares a dependency on us.
fn install_lines() -> Vec<&'static str> {
    README
        .lines()
        .map(str::trim)
        .filter(|line| {
            let toml_key = line.split_once(" = ").map(|(key, _)| key);
            line.starts_with("cargo add ")
                || toml_key.is_some_and(|key| key.starts_with("cachier") && !key.contains([' ', ':', '(']))
        })
        .collect()
}

#[test]
fn install_lines_name_the_published_package() {
    let lines = install_lines();
    assert!(lines.len() >= 2, "no install lines found: {lines:?}");
    for line in &lines {
        let named = match line.strip_prefix("cargo add ") {
            Some(args) => args.split_whitespace().next().unwrap_or_default(),
            None => line.split('=').next().unwrap_or_default().trim(),
        };
        assert_eq!(named, PACKAGE, "{line:?} installs another package");
    }
    assert!(
        README.contains(&format!(
            "`{PACKAGE} = {{ version = \"0.1\", features = [\"mongo\"] }}`"
        )),
        "the MongoDB feature line names another package"
    );
}

#[test]
fn the_library_keeps_the_name_cachier() {
    // What `use cachier::cachier;` in the README relies on.
    let manifest = include_str!("../Cargo.toml");
    assert!(
        manifest.contains("[lib]\nname = \"cachier\""),
        "the library was renamed"
    );
    assert!(README.contains("use cachier::cachier;"));
}
