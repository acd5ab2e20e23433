//! The README says what is so: every path it names exists, the figures it
//! quotes are those of `benches/results/`, the metrics it lists are what
//! `/metrics` exports, every VM test is named, and the shell blocks that
//! can run here (or their twins, where a block names a machine's paths)
//! print what the README shows. The next drift fails here instead of
//! reaching a reader.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// Paths in markdown links and in backticks that name a file of the
/// checkout (they begin with one of its folders).
fn named_paths(text: &str) -> BTreeSet<String> {
    const FOLDERS: &[&str] = &[
        "src/",
        "tests/",
        "nix/",
        "containers/",
        "benches/",
        "examples/",
        ".ci/",
    ];
    let mut out = BTreeSet::new();
    let mut candidates: Vec<&str> = Vec::new();
    for (open, close) in [("](", ')'), ("`", '`')] {
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            rest = &rest[i + open.len()..];
            if let Some(j) = rest.find(close) {
                candidates.push(&rest[..j]);
            }
        }
    }
    // And bare words, as comments in unit files write paths.
    candidates.extend(text.split_whitespace().map(|w| {
        w.trim_start_matches(['(', '[', '"', '\''])
            .trim_end_matches([')', ']', ',', '.', ';', ':', '"', '\''])
    }));
    for c in candidates {
        let path = c.split('#').next().unwrap_or("").trim();
        if FOLDERS.iter().any(|f| path.starts_with(f))
            && path
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch))
        {
            out.insert(path.to_owned());
        }
    }
    out
}

#[test]
fn every_path_the_readme_and_the_unit_files_name_exists() {
    let mut sources = vec![(PathBuf::from("README.md"), readme())];
    for dir in ["containers/quadlet", "containers/units", "containers"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                sources.push((path, text));
            }
        }
    }
    let mut missing = Vec::new();
    for (file, text) in &sources {
        for path in named_paths(text) {
            if !root().join(&path).exists() {
                missing.push(format!("{}: {path}", file.display()));
            }
        }
    }
    assert!(missing.is_empty(), "named but not there: {missing:#?}");
}

/// A markdown table: its header line and its rows by first cell.
struct Table {
    header: String,
    rows: Vec<String>,
}

fn tables(text: &str) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with('|') {
            if !in_table {
                out.push(Table {
                    header: line.to_owned(),
                    rows: Vec::new(),
                });
                in_table = true;
            } else if !line.starts_with("|---") && !line.starts_with("|:") {
                out.last_mut().unwrap().rows.push(line.to_owned());
            }
        } else {
            in_table = false;
        }
    }
    out
}

fn first_cell(row: &str) -> &str {
    row.trim_start_matches('|')
        .split('|')
        .next()
        .unwrap_or("")
        .trim()
}

#[test]
fn the_figures_the_readme_quotes_are_those_of_benches_results() {
    let readme = readme();
    let mut results = Vec::new();
    for entry in std::fs::read_dir(root().join("benches/results")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            results.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    let mut checked = 0;
    for table in tables(&readme) {
        let Some((file, source)) = results.iter().find_map(|(f, text)| {
            tables(text)
                .into_iter()
                .find(|t| t.header == table.header)
                .map(|t| (f, t))
        }) else {
            continue;
        };
        for row in &table.rows {
            let twin = source
                .rows
                .iter()
                .find(|r| first_cell(r) == first_cell(row))
                .unwrap_or_else(|| {
                    panic!("README row {row:?} is in no table of {}", file.display())
                });
            assert_eq!(row, twin, "the README quotes {} otherwise", file.display());
            checked += 1;
        }
    }
    // The "Measured ..." line above each quoted run is its file's.
    for line in readme.lines().filter(|l| l.starts_with("Measured 20")) {
        assert!(
            results
                .iter()
                .any(|(_, text)| text.lines().any(|l| l == line)),
            "README: {line:?} is no run's in benches/results/"
        );
    }
    assert!(checked >= 10, "only {checked} quoted rows found");
    // Figures quoted in prose.
    let cost: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("benches/results/cost.json")).unwrap(),
    )
    .unwrap();
    let bare = cost["hostile"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["server"]
                .as_str()
                .is_some_and(|s| s.starts_with("bare actix-web"))
        })
        .expect("bare actix-web among the pipelining figures");
    let peak = format!("{:.1}", bare["peak_rss_mib"].as_f64().unwrap());
    let clients = bare["clients"].as_u64().unwrap();
    let quoted = format!("{clients} such clients: {peak} MiB");
    assert!(readme.contains(&quoted), "the README should say {quoted:?}");
    let ratio = cost["instructions"][0]["per_request"].as_f64().unwrap()
        / cost["instructions"][1]["per_request"].as_f64().unwrap();
    let quoted = format!(
        "runs about {:.0} % more instructions",
        (ratio - 1.0) * 100.0
    );
    assert!(readme.contains(&quoted), "the README should say {quoted:?}");
}

/// `name_{a,b}_total` written in the README: every name it stands for.
fn expand(name: &str) -> Vec<String> {
    match (name.find('{'), name.find('}')) {
        (Some(i), Some(j)) if i < j => name[i + 1..j]
            .split(',')
            .flat_map(|part| expand(&format!("{}{part}{}", &name[..i], &name[j + 1..])))
            .collect(),
        _ => vec![name.to_owned()],
    }
}

#[test]
fn the_readme_lists_every_metric_and_only_real_ones() {
    let readme = readme();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `GET /metrics`"))
        .expect("the /metrics row");
    let mut listed = BTreeSet::new();
    for token in row.split('`').skip(1).step_by(2) {
        let name = token.split('{').next().map_or(token, |_| {
            // Keep a brace that is part of the name (before `_total` or
            // another part), drop the label list at the end.
            match token.rfind('{') {
                Some(i) if token.ends_with('}') && !token[i..].contains('_') => &token[..i],
                _ => token,
            }
        });
        for n in expand(name) {
            if n.starts_with("handoff_") || n.starts_with("process_") {
                listed.insert(n.trim_end_matches("_total").to_owned());
            }
        }
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr]);
    let _proc = Proc::spawn(cmd);
    wait_until_serving(&addr, Duration::from_secs(10));
    let metrics = get(&addr, "/metrics").unwrap().body;
    let exported: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let unlisted: Vec<_> = exported.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "/metrics exports, the README does not list: {unlisted:?}"
    );
    // Families with labels appear once used (a TLS handshake, a stream at
    // a drain): those the README lists must at least be registered.
    let source = std::fs::read_to_string(root().join("src/http/shared/metrics.rs")).unwrap();
    let unknown: Vec<_> = listed
        .iter()
        .filter(|n| !exported.contains(*n))
        .filter(|n| !source.contains(&format!("\"{}\"", n.trim_start_matches("handoff_"))))
        .collect();
    assert!(
        unknown.is_empty(),
        "the README lists what handoff does not have: {unknown:?}"
    );
}

#[test]
fn the_readme_names_every_vm_test() {
    let readme = readme();
    for entry in std::fs::read_dir(root().join("nix/tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("`{name}`")),
            "the README does not name nix/tests/{name}"
        );
    }
}

/// The README's `$ COMMAND` blocks whose command runs here: the output is
/// the README's, word for word (`handoff` is this checkout's binary).
#[test]
fn the_readme_blocks_that_run_here_print_what_they_show() {
    let readme = readme();
    let mut ran = 0;
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ ") else {
            continue;
        };
        let mut expected = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("```") {
                break;
            }
            expected.push(*next);
            lines.next();
        }
        // Only blocks about this machine's checkout: the rest name a pid,
        // a unit or a host of their own.
        if !command.ends_with("handoff check-config") {
            continue;
        }
        let (env, _) = command.rsplit_once(" handoff").unwrap();
        let mut cmd = handoff();
        cmd.arg("check-config");
        for pair in env.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let printed = String::from_utf8_lossy(&out.stderr);
        assert_eq!(printed.trim_end(), expected.join("\n"), "$ {command}");
        ran += 1;
    }
    assert!(ran >= 1, "no runnable block found");
}

/// The notes block of "Your own service", as written: a note posted is
/// answered 201 with its text, a pool size of 0 is refused with 78 in the
/// words the README shows.
#[test]
fn the_notes_block_of_your_own_service_does_what_it_says() {
    let readme = readme();
    let refused = readme
        .lines()
        .find(|l| l.starts_with("# notes: invalid configuration"))
        .expect("the notes block");
    let (message, status) = refused
        .trim_start_matches("# ")
        .rsplit_once("  (exit ")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = service(example_bin("notes"));
    cmd.arg("check-config")
        .env("HANDOFF__APP__POOL_SIZE", "0")
        .current_dir(dir.path());
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), message);
    assert_eq!(
        out.status.code().map(|c| c.to_string()),
        Some(status.trim_end_matches(')').to_owned())
    );
    // `curl -d 'first note' localhost:8081/api/notes   # first note (201)`
    let line = readme
        .lines()
        .find(|l| l.starts_with("curl -d 'first note'"))
        .expect("the notes curl line");
    let shown = line.split("# ").nth(1).unwrap().trim();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = service(example_bin("notes"));
    cmd.args(["--listen", &addr]).current_dir(dir.path());
    let _notes = Proc::spawn(cmd);
    let started = std::time::Instant::now();
    while !get(&addr, "/healthz").is_ok_and(|r| r.status == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "notes does not serve"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("curl")
        .args(["-sS", "-w", " (%{http_code})", "-d", "first note"])
        .arg(format!("http://{addr}/api/notes"))
        .output()
        .expect("curl");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains("first note") && got.ends_with("(201)"),
        "{got}, README: {shown}"
    );
}
