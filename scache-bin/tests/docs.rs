//! The documents stay true: README's examples, its parameter table and the
//! man page against the parameters the daemon knows.

use scache_bin::config::PARAMETERS;

const README: &str = include_str!("../../README.md");
const MAN: &str = include_str!("../../man/scache.8");

/// README's Rust examples are compiled (a doctest of this crate); lines
/// hidden from rustdoc with `# ` would show literally on GitHub and
/// crates.io, so there must be none.
#[test]
fn readme_rust_blocks_have_no_hidden_lines() {
    let mut in_rust = false;
    for (n, line) in README.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            in_rust = !in_rust && info.starts_with("rust");
            continue;
        }
        assert!(
            !(in_rust && (line.starts_with("# ") || line == "#")),
            "README.md line {}: hidden doctest line {line:?}",
            n + 1
        );
    }
}

/// Every `scache_*` parameter is in README's table and in the man page.
#[test]
fn every_new_parameter_is_documented() {
    for p in PARAMETERS.iter().filter(|p| p.name.starts_with("scache_")) {
        assert!(
            README.contains(&format!("| `{}` |", p.name)),
            "README.md's parameter table lacks {}",
            p.name
        );
        let man_name = p.name.replace('-', "\\-");
        assert!(
            MAN.contains(&format!(".BR {man_name} \"")),
            "man/scache.8 lacks an entry for {}",
            p.name
        );
    }
}
