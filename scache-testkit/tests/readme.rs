//! README.md's library example is the code of
//! `scache-proto/examples/readme.rs`, which cargo builds: the README shows
//! code that compiles.

#[test]
fn readme_rust_block_is_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("scache-proto/examples/readme.rs")).unwrap();
    let block: Vec<&str> = readme
        .split("```rust,no_run\n")
        .nth(1)
        .expect("a ```rust,no_run block in README.md")
        .split("\n```")
        .next()
        .unwrap()
        .lines()
        .collect();
    let code: Vec<&str> = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .collect();
    assert_eq!(
        block, code,
        "README.md's example and examples/readme.rs differ"
    );
    assert!(
        block.len() <= 15,
        "the quick start is {} lines",
        block.len()
    );
    assert!(
        !block.iter().any(|l| l.trim_start().starts_with("# ")),
        "hidden lines"
    );
}
