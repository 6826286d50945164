//! Replays the fuzz targets' checks (fuzz/checks.rs, shared with the
//! cargo-fuzz targets) as ordinary tests, without nightly or libFuzzer:
//!
//! - every file in fuzz/regressions/<target>/ through that target's check:
//!   minimised inputs that once made a target fail, and hand-picked inputs
//!   that pin a corner of each target (see fuzz/regressions/README.md).
//!   Each target's directory must exist and hold at least one input, and
//!   fuzz/regressions/ holds nothing else, so a renamed target or a
//!   misplaced file cannot make the replay silently empty;
//! - every file of the shared request corpus through all the checks, with a
//!   few configuration prefixes for the targets that take one.
//!
//! The `differential` target's httparse half needs a fuzz-only dependency;
//! its regression files are replayed here through our own-side checks.
//!
//! fuzz/regressions/<target>/known/ (optional) holds inputs that still show
//! an open bug in src/ (see docs/FUZZING.md): they are expected to fail
//! their check, and the test says so when one stops failing (the bug was
//! fixed: move the file up one directory).

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("parse_head", checks::check_parse_head),
    ("split_equivalence", checks::check_split_equivalence),
    ("chunked", checks::check_chunked),
    ("percent_decode", checks::check_percent_decode),
    ("conn", checks::check_conn),
    ("differential", checks::check_parse_head),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted, README.md aside; the directory must exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let rd = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut v: Vec<PathBuf> = rd
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn regressions() -> PathBuf {
    root().join("fuzz/regressions")
}

/// fuzz/regressions/ holds README.md and one directory per target; a
/// target's directory holds input files and, optionally, known/.
#[test]
fn regressions_holds_only_target_directories() {
    for entry in fs::read_dir(regressions()).expect("fuzz/regressions/") {
        let path = entry.expect("fuzz/regressions/ entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name == "README.md" {
            continue;
        }
        assert!(
            path.is_dir() && TARGETS.iter().any(|(t, _)| *t == name),
            "{} is not a fuzz target's directory (targets: {:?})",
            path.display(),
            TARGETS.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        for inner in fs::read_dir(&path).expect("target directory") {
            let inner = inner.expect("target directory entry").path();
            assert!(
                inner.is_file() || inner.file_name().is_some_and(|n| n == "known"),
                "{}: only input files and known/ belong here",
                inner.display()
            );
        }
    }
}

#[test]
fn regressions_pass_their_checks() {
    let mut n = 0;
    for (target, check) in TARGETS {
        let inputs = files(&regressions().join(target));
        assert!(
            !inputs.is_empty(),
            "fuzz/regressions/{target}/ holds no input: each target keeps at least one \
             (see fuzz/regressions/README.md)"
        );
        for f in inputs {
            let data = read(&f);
            if panic::catch_unwind(|| check(&data)).is_err() {
                panic!("{} fails its {target} check", f.display());
            }
            n += 1;
        }
    }
    eprintln!("{n} regression inputs replayed");
}

#[test]
fn known_bugs_still_fail() {
    for (target, check) in TARGETS {
        let dir = regressions().join(target).join("known");
        if !dir.exists() {
            continue; // no open bug for this target
        }
        for f in files(&dir) {
            let data = read(&f);
            let prev = panic::take_hook();
            panic::set_hook(Box::new(|_| {}));
            let failed = panic::catch_unwind(|| check(&data)).is_err();
            panic::set_hook(prev);
            assert!(
                failed,
                "{} no longer fails its {target} check: the bug is fixed, \
                 move the file to fuzz/regressions/{target}/ and update docs/FUZZING.md",
                f.display()
            );
        }
    }
}

/// The shared corpus: `../shared/corpus/http-requests` beside the checkout.
fn corpus_files() -> Vec<PathBuf> {
    let dir = root().join("../shared/corpus/http-requests");
    assert!(
        dir.is_dir(),
        "no request corpus at {} (CI has shared/ beside the checkout)",
        dir.display()
    );
    let v: Vec<PathBuf> = ["valid", "invalid"]
        .iter()
        .flat_map(|k| files(&dir.join(k)))
        .collect();
    assert!(
        !v.is_empty(),
        "no request corpus at {} (CI has shared/ beside the checkout)",
        dir.display()
    );
    v
}

/// Configuration prefixes the corpus is replayed with (see checks::CFG).
const PREFIXES: &[[u8; checks::CFG]] = &[
    [0, 0, 1, 0],
    [1, 5, 2, 1],
    [2, 1, 0, 3],
    [3, 2, 3, 0],
    [5, 0, 7, 2],
    [6, 1, 4, 1],
];

#[test]
fn corpus_through_all_checks() {
    for f in corpus_files() {
        let data = read(&f);
        let name = f.display();
        let run = |what: &str, check: Check, input: &[u8]| {
            if panic::catch_unwind(|| check(input)).is_err() {
                panic!("{name}: {what} check fails");
            }
        };
        run("parse_head", checks::check_parse_head, &data);
        run("chunked", checks::check_chunked, &data);
        run("percent_decode", checks::check_percent_decode, &data);
        // The request-target alone, and the body after the first head.
        if let Some(target) = data.split(|&b| b == b' ').nth(1) {
            run("percent_decode", checks::check_percent_decode, target);
        }
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            run("chunked", checks::check_chunked, &data[i + 4..]);
        }
        for p in PREFIXES {
            let input = [&p[..], &data].concat();
            run("split_equivalence", checks::check_split_equivalence, &input);
            run("conn", checks::check_conn, &input);
        }
    }
}

/// Hand-written inputs for corners the corpus does not reach.
#[test]
fn hand_written_inputs() {
    let conn: &[&[u8]] = &[
        // Every response shape (last target byte % 7), pipelined, on 1.1
        // and 1.0, with HEAD and an Expect: 100-continue body.
        b"GET /0 HTTP/1.1\r\nHost: h\r\n\r\nGET /1 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: h\r\n\r\nGET /5 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /6 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /4 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /1 HTTP/1.0\r\n\r\n",
        b"GET /0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /4 HTTP/1.0\r\n\r\n",
        b"HEAD /0 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /1 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /0 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /0 HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /0 HTTP/1.1\r\nHost: h\r\n\r\n",
    ];
    for input in conn {
        for p in PREFIXES {
            checks::check_conn(&[&p[..], input].concat());
        }
    }
}
