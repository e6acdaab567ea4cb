//! The documents stay true: README's examples, its parameter table and the
//! man page against the parameters the daemon knows; the Debian package's
//! systemd units against the source tree's.

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

/// The package's units are the source tree's, with the package's names
/// and the binary's installed path.
#[test]
fn the_package_units_are_the_source_units() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let body = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    for (source, packaged) in [
        (
            "systemd/scache.service",
            "scache-bin/debian/scache-rs.service",
        ),
        (
            "systemd/scache.socket",
            "scache-bin/debian/scache-rs.socket",
        ),
    ] {
        let want: Vec<String> = body(&read(source))
            .into_iter()
            .map(|l| {
                l.replace("/usr/local/bin/scache", "/usr/lib/postfix/sbin/scache-rs")
                    .replace("scache.socket", "scache-rs.socket")
                    .replace("/etc/default/scache", "/etc/default/scache-rs")
                    .replace("man:scache(8)", "man:scache-rs(8)")
            })
            .collect();
        assert_eq!(body(&read(packaged)), want, "{packaged} vs {source}");
    }
    // And cargo-deb installs them, with the binary, man page and swap script.
    let manifest = read("scache-bin/Cargo.toml");
    for asset in [
        "[\"target/release/scache\", \"usr/lib/postfix/sbin/scache-rs\", \"755\"]",
        "[\"../man/scache.8\", \"usr/share/man/man8/scache-rs.8\", \"644\"]",
        "[\"../scripts/postfix-swap.sh\", \"usr/sbin/scache-rs-swap\", \"755\"]",
        "[\"debian/scache-rs.service\", \"lib/systemd/system/scache-rs.service\", \"644\"]",
        "[\"debian/scache-rs.socket\", \"lib/systemd/system/scache-rs.socket\", \"644\"]",
    ] {
        assert!(
            manifest.contains(asset),
            "scache-bin/Cargo.toml lacks the asset {asset}"
        );
    }
    assert!(manifest.contains("recommends = \"postfix\""));
}
