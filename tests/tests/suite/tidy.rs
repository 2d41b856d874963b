//! Lints the repository itself: architecture rules the compiler cannot see.
//!
//! * The pure domain (`ledger-core/src/domain`) imports nothing that does
//!   I/O, reads a clock, draws randomness or generates UUIDs.
//! * Only the store may call fsync.
//! * No leftover debug output, `todo!` or `unimplemented!` anywhere, and no
//!   absolute paths of a developer's machine.
//! * Every crate says what it is for in its crate docs.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every Rust source of the workspace with its path relative to the root.
fn workspace_sources() -> Vec<(String, String)> {
    let root = workspace_root();
    rust_files(&root)
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let source = fs::read_to_string(&file).expect("readable source");
            (relative, source)
        })
        .collect()
}

/// Uses that would make the domain impure, with why each is banned.
const IMPURE: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("std::fs", "file system"),
    ("std::net", "network"),
    ("std::io", "I/O"),
    ("std::env", "environment"),
    ("std::process", "processes"),
    ("std::thread", "threads"),
    ("SystemTime", "system clock"),
    ("Instant", "monotonic clock"),
    ("OffsetDateTime::now", "system clock"),
    ("Utc::now", "system clock"),
    ("rand::", "randomness"),
    ("getrandom", "randomness"),
    ("thread_rng", "randomness"),
    ("RandomState", "randomly seeded hashing"),
    ("Uuid::new_v4", "UUID generation"),
    ("Uuid::now_v7", "UUID generation"),
    ("new_v7", "UUID generation"),
];

/// Lines of `source` that use a banned name, outside comments.
fn impure_uses(source: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut findings = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (needle, why) in IMPURE {
            if code.contains(needle) {
                findings.push((number + 1, *needle, *why));
            }
        }
    }
    findings
}

#[test]
fn the_tidy_scanner_finds_what_it_looks_for() {
    let findings = impure_uses(
        "use tokio::sync;\n// SystemTime in a comment is fine\nlet t = std::time::Instant::now();",
    );
    let needles: Vec<_> = findings
        .iter()
        .map(|(line, needle, _)| (*line, *needle))
        .collect();
    assert_eq!(needles, vec![(1, "tokio"), (3, "Instant")]);
}

#[test]
fn the_domain_is_pure() {
    let domain = workspace_root().join("ledger-core/src/domain");
    let files = rust_files(&domain);
    assert!(
        files.len() > 10,
        "expected the domain sources under {}",
        domain.display()
    );
    let mut problems = Vec::new();
    for file in files {
        let source = fs::read_to_string(&file).expect("readable source");
        for (line, needle, why) in impure_uses(&source) {
            problems.push(format!("{}:{line}: `{needle}` ({why})", file.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the pure domain must not use:\n{}",
        problems.join("\n")
    );
}

#[test]
fn only_the_store_calls_fsync() {
    let mut problems = Vec::new();
    for (relative, source) in workspace_sources() {
        // Tests drive the simulated disk, and the log benchmark measures the
        // raw fdatasync rate through the store's own file type on purpose.
        let allowed = [
            "ledger-core/src/store/",
            "tests/",
            "benches/benches/event_log.rs",
        ];
        if allowed.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        for (number, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if ["sync_all(", "sync_data(", "fdatasync", "fsync("]
                .iter()
                .any(|needle| code.contains(needle))
            {
                problems.push(format!("{relative}:{}", number + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "fsync outside ledger-core/src/store:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_leftovers_or_machine_paths() {
    let banned = [
        "dbg!(",
        "todo!(",
        "unimplemented!(",
        "\"/home/",
        "\"/root/",
        "\"/work/",
        "\"/Users/",
    ];
    let this_file = file!().replace('\\', "/");
    let mut problems = Vec::new();
    for (relative, source) in workspace_sources() {
        if this_file.ends_with(relative.as_str()) {
            continue;
        }
        for (number, line) in source.lines().enumerate() {
            for needle in banned {
                if line.contains(needle) {
                    problems.push(format!("{relative}:{}: {needle}", number + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "leftovers:\n{}", problems.join("\n"));
}

#[test]
fn every_crate_documents_its_purpose() {
    let root = workspace_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("workspace manifest");
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|list| {
            list.split(',')
                .map(|item| item.trim().trim_matches('"'))
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default();
    assert!(members.len() >= 7, "workspace members: {members:?}");
    for member in members {
        let library = root.join(member).join("src/lib.rs");
        let source =
            fs::read_to_string(&library).unwrap_or_else(|_| panic!("{member} has no src/lib.rs"));
        let docs: Vec<&str> = source
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        assert!(
            docs.len() >= 2,
            "{member}/src/lib.rs must open with crate docs saying what it is for"
        );
    }
}
