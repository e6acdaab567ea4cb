//! Replays the checked-in fuzz corpora (`fuzz/corpus/<target>/`) through
//! the fuzz target bodies of `scache_proto::fuzzing`, so every test run on
//! the stable toolchain exercises them.
//!
//! The seeds themselves are written by the ignored test `write_seeds`:
//! `cargo test -p scache-proto --test fuzz_corpus -- --ignored write_seeds`.

use std::fs;
use std::path::PathBuf;

use scache_proto::attr::{put_attr, put_end};
use scache_proto::fuzzing::TARGETS;

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join("corpus")
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_root().join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_replays_clean() {
    for (name, body) in TARGETS {
        let files = corpus(name);
        assert!(files.len() >= 20, "{name}: only {} seeds", files.len());
        for (path, data) in files {
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
        }
    }
}

#[test]
fn every_corpus_directory_has_a_target() {
    for entry in fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} has no target in scache_proto::fuzzing::TARGETS"
        );
    }
}

fn m(attrs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in attrs {
        put_attr(&mut out, n, v);
    }
    put_end(&mut out);
    out
}

const ENDP: &[u8] = b"smtp\n192.0.2.1\n25\n*\n*\n";
const DEST: &[u8] = b"smtp\nexample.com\n*\n*\n";
const ENDP_PROP: &[u8] = b"reuse_count=0\nendpoint_features=0\nexpire_time=1700000300\n";
const DEST_PROP: &[u8] =
    b"destination=example.com\nhost_name=mx.example.com\nhost_addr=192.0.2.1\nhost_port=25\n";

/// Client requests, well formed and not.
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let all: Vec<u8> = (1..=255u8).collect();
    let save_endp = |ttl: &[u8]| {
        m(&[
            (b"request", b"save_endp"),
            (b"ttl", ttl),
            (b"label", ENDP),
            (b"property", ENDP_PROP),
        ])
    };
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("save_endp", save_endp(b"2")),
        (
            "find_endp",
            m(&[(b"request", b"find_endp"), (b"label", ENDP)]),
        ),
        (
            "save_dest",
            m(&[
                (b"request", b"save_dest"),
                (b"ttl", b"300"),
                (b"label", DEST),
                (b"property", DEST_PROP),
                (b"label", ENDP),
            ]),
        ),
        (
            "find_dest",
            m(&[(b"request", b"find_dest"), (b"label", DEST)]),
        ),
        ("stats", m(&[(b"request", b"stats")])),
        ("dummy", m(&[(b"dummy", b"")])),
        ("empty_message", m(&[])),
        (
            "all_bytes_label",
            m(&[(b"request", b"find_endp"), (b"label", &all)]),
        ),
        (
            "newline_label",
            m(&[(b"request", b"find_dest"), (b"label", b"\n\n\n")]),
        ),
        (
            "empty_label",
            m(&[(b"request", b"find_endp"), (b"label", b"")]),
        ),
        ("ttl_zero", save_endp(b"0")),
        ("ttl_negative", save_endp(b"-5")),
        ("ttl_plus", save_endp(b"+5")),
        ("ttl_space", save_endp(b" \t5")),
        ("ttl_trailing_space", save_endp(b"5 ")),
        ("ttl_junk", save_endp(b"5x")),
        ("ttl_empty", save_endp(b"")),
        ("ttl_2_31", save_endp(b"2147483648")),
        ("ttl_max", save_endp(b"2147483647")),
        ("ttl_wrap", save_endp(b"4294967297")),
        ("ttl_huge", save_endp(b"99999999999999999999999999")),
        (
            "missing_ttl",
            m(&[
                (b"request", b"save_endp"),
                (b"label", ENDP),
                (b"property", b""),
            ]),
        ),
        (
            "missing_property",
            m(&[(b"request", b"save_endp"), (b"ttl", b"1"), (b"label", ENDP)]),
        ),
        ("missing_label", m(&[(b"request", b"find_endp")])),
        (
            "wrong_name",
            m(&[(b"request", b"find_endp"), (b"property", b"x")]),
        ),
        (
            "save_dest_short",
            m(&[
                (b"request", b"save_dest"),
                (b"ttl", b"1"),
                (b"label", DEST),
                (b"property", b""),
            ]),
        ),
        (
            "extra_after",
            m(&[
                (b"request", b"find_endp"),
                (b"label", ENDP),
                (b"extra", b"v"),
                (b"more", b"w"),
            ]),
        ),
        (
            "duplicate_request",
            m(&[(b"request", b"find_endp"), (b"request", b"find_dest")]),
        ),
        (
            "unknown_request",
            m(&[(b"request", b"flush_endp"), (b"label", ENDP)]),
        ),
        (
            "no_request_first",
            m(&[(b"label", ENDP), (b"request", b"find_endp")]),
        ),
        (
            "greeting",
            m(&[(b"protocol", b"connection_cache_protocol")]),
        ),
        ("status_reply", m(&[(b"status", b"0")])),
    ];
    let mut pipelined = Vec::new();
    for (_, r) in v.iter().take(5) {
        pipelined.extend_from_slice(r);
    }
    v.push(("pipelined", pipelined.clone()));
    let mut with_dummies = Vec::new();
    with_dummies.extend(m(&[(b"request", b"find_endp"), (b"label", b"e")]));
    with_dummies.extend(m(&[(b"dummy", b"")]));
    with_dummies.extend(m(&[(b"dummy", b"")]));
    with_dummies.extend(m(&[(b"request", b"find_dest"), (b"label", b"d")]));
    v.push(("find_dummy_dummy_find", with_dummies));
    let full = save_endp(b"2");
    v.push(("truncated_mid_value", full[..full.len() / 2].to_vec()));
    v.push(("truncated_before_end", full[..full.len() - 1].to_vec()));
    v.push(("nul_flood", vec![0u8; 4096]));
    v.push(("no_nul", vec![b'x'; 4096]));
    v.push((
        "oversized_value",
        m(&[(b"request", b"find_endp"), (b"label", &vec![b'v'; 70_000])]),
    ));
    v.push((
        "oversized_name",
        m(&[(&vec![b'n'; 300][..], b"v"), (b"request", b"stats")]),
    ));
    let many: Vec<(&[u8], &[u8])> = (0..40).map(|_| (&b"a"[..], &b"b"[..])).collect();
    let mut over_then_ok = m(&many);
    over_then_ok.extend(m(&[(b"request", b"find_endp"), (b"label", b"after")]));
    v.push(("too_many_attrs_then_request", over_then_ok));
    v
}

/// Server replies as a client sees them.
fn replies() -> Vec<(&'static str, Vec<u8>)> {
    let greeting = m(&[(b"protocol", b"connection_cache_protocol")]);
    let mut v = Vec::new();
    let mut push = |name: &'static str, parts: &[&[u8]]| {
        v.push((name, parts.concat()));
    };
    let dummy = m(&[(b"dummy", b"")]);
    let s0 = m(&[(b"status", b"0")]);
    let s1 = m(&[(b"status", b"1")]);
    let s2 = m(&[(b"status", b"2")]);
    push("greeting_only", &[&greeting]);
    push("save_ok", &[&greeting, &dummy, &s0]);
    push("save_refused", &[&greeting, &s1]);
    push("save_fd_failed", &[&greeting, &dummy, &s2]);
    push(
        "find_endp_hit",
        &[
            &greeting,
            &m(&[(b"status", b"0"), (b"property", ENDP_PROP)]),
        ],
    );
    push(
        "find_endp_miss",
        &[&greeting, &m(&[(b"status", b"2"), (b"property", b"")])],
    );
    push(
        "find_dest_hit",
        &[
            &greeting,
            &m(&[
                (b"status", b"0"),
                (b"property", DEST_PROP),
                (b"property", ENDP_PROP),
            ]),
        ],
    );
    push(
        "find_dest_miss",
        &[
            &greeting,
            &m(&[(b"status", b"2"), (b"property", b""), (b"property", b"")]),
        ],
    );
    push(
        "find_malformed",
        &[
            &greeting,
            &m(&[(b"status", b"1"), (b"property", b""), (b"property", b"")]),
        ],
    );
    push(
        "stats",
        &[
            &greeting,
            &m(&[
                (b"status", b"0"),
                (b"sess_count", b"3"),
                (b"dest_hits", b"7"),
            ]),
        ],
    );
    push("bad_status", &[&greeting, &m(&[(b"status", b"9")])]);
    push("status_text", &[&greeting, &m(&[(b"status", b"ok")])]);
    push("wrong_greeting", &[&m(&[(b"protocol", b"other")])]);
    push("no_greeting", &[&s0]);
    push("many_replies", &[&greeting, &s0, &s0, &dummy, &s2]);
    push("nul_flood", &[&[0u8; 512]]);
    push("greeting_then_nul_flood", &[&greeting, &[0u8; 512]]);
    push(
        "greeting_then_garbage",
        &[&greeting, b"status\x000\0property"],
    );
    push(
        "oversized_prop",
        &[
            &greeting,
            &m(&[(b"status", b"0"), (b"property", &vec![b'p'; 70_000])]),
        ],
    );
    push("missing_property", &[&greeting, &m(&[(b"status", b"0")])]);
    push(
        "extra_after",
        &[
            &greeting,
            &m(&[
                (b"status", b"2"),
                (b"property", b""),
                (b"property", b""),
                (b"x", b"y"),
            ]),
        ],
    );
    v
}

#[test]
#[ignore = "writes the seed files into fuzz/corpus"]
fn write_seeds() {
    let root = corpus_root();
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), data).unwrap();
    };
    for (name, data) in requests() {
        write("request_parser", format!("seed-{name}"), &data);
        // decoder: first byte selects limits (low 2 bits) and chunk size.
        let selectors: &[u8] = if data.len() > 8192 {
            &[0]
        } else {
            &[0, 0x05, 0x02, 0xff]
        };
        for &selector in selectors {
            let mut input = vec![selector];
            input.extend_from_slice(&data);
            write("decoder", format!("seed-{name}-{selector:02x}"), &input);
        }
    }
    for (name, data) in replies() {
        // client_exchange: bits 0-1 pick the operation (bit 3: stats), bit
        // 2 leaves the greeting to the input, bits 4-7 the chunk size.
        let selectors: &[u8] = if data.len() > 8192 {
            &[1]
        } else {
            &[0, 1, 2, 3, 4, 8, 0x13, 0xf1]
        };
        for &selector in selectors {
            let mut input = vec![selector];
            input.extend_from_slice(&data);
            write(
                "client_exchange",
                format!("seed-{name}-{selector:02x}"),
                &input,
            );
        }
    }
}
