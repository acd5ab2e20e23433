//! The NixOS VM tests of nix/tests/, run here: each script, exactly as
//! `.ci/vm-test-scripts.nix` renders it, runs to its end against systemd
//! containers with the units the NixOS module renders for each node
//! (tests/nixos/run.py, nix/eval/vm-test.nix), through an implementation of
//! the NixOS test driver's machine API (tests/nixos/driver.py) whose
//! semantics are checked against the real driver's (tests/nixos/driver_test.py).
//! Before any of that, every script passes the checks nixpkgs' driver
//! derivation runs before a VM boots (tests/nixos/script_checks.py: mypy
//! and pyflakes, ty and ruff, against the driver's real signatures).
//! A script's failed assertion fails its test; a test that cannot run here
//! says why (run.py --list).
//!
//! Needs podman (as the container suite), nix-instantiate and the nixpkgs
//! subset (tests/nixpkgs/mod.rs), and Debian's Python 3.

mod nixpkgs;
mod podman;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use nixpkgs::nixpkgs;
use podman::{serial, skipped};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Python (the harness needs its standard library only), with podman
/// configured as for the container suite.
fn python() -> Command {
    let mut cmd = Command::new(support::python());
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        cmd.env(
            "CONTAINERS_CONF",
            root().join("tests/podman/containers.conf"),
        );
    }
    cmd
}

/// The binaries the nodes' stand-in packages stand for, built once per test
/// binary as nix/package.nix builds them: handoff with HANDOFF_BUILD_ID=nix
/// (the package) and =v2 (the tests' other build), examples/hello, loadgen;
/// from the suite's one build (`podman::suite_binaries`), where another
/// build id recompiles bin/handoff alone, in seconds.
struct Binaries {
    _dir: tempfile::TempDir,
    args: Vec<String>,
}

fn binaries() -> &'static Binaries {
    static BUILT: OnceLock<Binaries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut args = Vec::new();
        for id in ["nix", "v2"] {
            let built = podman::suite_binaries(Some(id));
            let copy = dir.path().join(format!("handoff-{id}"));
            std::fs::copy(built.join("handoff"), &copy).unwrap();
            args.push(format!("--handoff={id}={}", copy.display()));
        }
        if let Some(site) = h3_site_packages() {
            args.push(format!("--python-packages={}", site.display()));
        }
        let built = podman::suite_binaries(None);
        for (name, path) in [
            ("loadgen", built.join("loadgen")),
            ("hello", built.join("examples/hello")),
        ] {
            let copy: PathBuf = dir.path().join(name);
            std::fs::copy(path, &copy).unwrap();
            args.push(format!("--bin={name}={}", copy.display()));
        }
        Binaries { _dir: dir, args }
    })
}

/// The site-packages directory of the Python with aioquic that tests/run
/// installs (`HANDOFF_H3_PYTHON`): the stand-in for the HTTPS test's
/// `python3.withPackages (ps: [ ps.aioquic ])`. None without one. Asked
/// of Python once per test binary.
fn h3_site_packages() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let python = support::clients::H3Clients::python()?;
            let out = Command::new(python)
                .args([
                    "-c",
                    "import aioquic, os; print(os.path.dirname(os.path.dirname(aioquic.__file__)))",
                ])
                .output()
                .ok()?;
            let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
            (out.status.success() && dir.is_dir()).then_some(dir)
        })
        .as_deref()
}

/// Runs `test` (a file of nix/tests/), or `script` on its nodes: the exit
/// status and everything the driver printed.
fn run(test: &str, nixpkgs: &Path, script: Option<&Path>) -> (i32, String) {
    run_within(test, nixpkgs, script, GLOBAL_TIMEOUT)
}

/// Each run's bound, the real driver's `--global-timeout`: a hung script
/// fails its test instead of hanging `cargo test` (the fleet, the longest,
/// takes about 150 s).
const GLOBAL_TIMEOUT: Duration = Duration::from_secs(900);

fn run_within(
    test: &str,
    nixpkgs: &Path,
    script: Option<&Path>,
    timeout: Duration,
) -> (i32, String) {
    let mut cmd = python();
    cmd.arg(root().join("tests/nixos/run.py"))
        .arg(test)
        .arg("--nixpkgs")
        .arg(nixpkgs)
        .arg(format!("--global-timeout={}", timeout.as_secs()))
        .args(&binaries().args);
    if let Some(script) = script {
        cmd.arg("--script").arg(script);
    }
    let out = cmd.output().expect("python3 tests/nixos/run.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The script of `test` as the VM test would run it.
fn rendered(test: &str) -> String {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(root().join(".ci/vm-test-scripts.nix"))
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    all[test]["source"].as_str().unwrap().to_owned()
}

fn vm_test(name: &str, test: &str) {
    if skipped(name) {
        return;
    }
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    // The HTTPS test's HTTP/3 clients are aioquic's.
    if test == "https.nix" && h3_site_packages().is_none() {
        podman::record_skip(
            name,
            "no Python with aioquic (HANDOFF_H3_PYTHON; tests/run installs it from PyPI)",
        );
        return;
    }
    let _one = serial();
    let (status, out) = run(test, nixpkgs, None);
    println!("{out}");
    assert_eq!(status, 0, "{test} failed (its log is above)");
    // The figures: each subtest, and the load's summary after each load.
    let figures: String = out
        .lines()
        .filter(|l| {
            (l.trim_start().starts_with("subtest: ") && !l.contains("took"))
                || l.starts_with("all ")
                || l.starts_with("HTTP/3 clients:")
                || l.contains("Overall exposure level")
        })
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    support::report(
        &format!("vm-{}", test.trim_end_matches(".nix")),
        &format!("== nix/tests/{test}, run on systemd containers\n{figures}"),
    );
}

/// The tests that run here; the others are in run.py's list with a reason.
const RUN_HERE: &[&str] = &[
    "activation.nix",
    "fleet.nix",
    "hardening.nix",
    "https.nix",
    "reload.nix",
    "restart.nix",
    "switch.nix",
    "two-apps.nix",
];

#[test]
fn vm_test_activation() {
    vm_test("vm_test_activation", "activation.nix");
}

#[test]
fn vm_test_fleet() {
    vm_test("vm_test_fleet", "fleet.nix");
}

#[test]
fn vm_test_hardening() {
    vm_test("vm_test_hardening", "hardening.nix");
}

#[test]
fn vm_test_https() {
    vm_test("vm_test_https", "https.nix");
}

#[test]
fn vm_test_reload() {
    vm_test("vm_test_reload", "reload.nix");
}

#[test]
fn vm_test_restart() {
    vm_test("vm_test_restart", "restart.nix");
}

#[test]
fn vm_test_switch() {
    vm_test("vm_test_switch", "switch.nix");
}

#[test]
fn vm_test_two_apps() {
    vm_test("vm_test_two_apps", "two-apps.nix");
}

/// Each file of nix/tests/ either runs above or is listed with the reason
/// it cannot run here, and the list is printed.
#[test]
fn every_vm_test_runs_here_or_says_why_not() {
    let out = python()
        .arg(root().join("tests/nixos/run.py"))
        .arg("--list")
        .output()
        .expect("python3");
    assert!(out.status.success());
    let list: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<String> = std::fs::read_dir(root().join("nix/tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(list.len(), files.len(), "{list:?} {files:?}");
    for file in &files {
        match &list[file] {
            serde_json::Value::Null => {
                assert!(RUN_HERE.contains(&file.as_str()), "{file} runs nowhere")
            }
            serde_json::Value::String(why) => {
                assert!(!RUN_HERE.contains(&file.as_str()));
                println!("{file} cannot run here: {why}");
            }
            other => panic!("{file}: {other}"),
        }
    }
}

/// The harness fails a script whose assertion fails, with the script's
/// own message: a copy of hardening.nix with its bound lowered below the
/// unit's score, of fleet.nix switching every web node to web1's system
/// (a defect it had: the node takes web1's name and address), and of
/// activation.nix waiting for a unit that does not exist (a requested
/// assertion: the script's line is named).
#[test]
fn a_failed_assertion_fails_the_run_with_the_scripts_own_message() {
    let name = "a_failed_assertion_fails_the_run_with_the_scripts_own_message";
    if skipped(name) {
        return;
    }
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "hardening.nix",
            "assert score <= 0.5,",
            "assert score <= 0.1,",
            "AssertionError: exposure 0.",
        ),
        // fleet.nix as it was: every web node switched to web1's system,
        // which carries web1's host name and address.
        (
            "fleet.nix",
            "return f\"{TOPLEVEL[w.name]}/specialisation",
            "return f\"{TOPLEVEL['web1']}/specialisation",
            "web2 answers to the name web1 after its switch",
        ),
        (
            "activation.nix",
            "machine.wait_for_unit(\"handoff.socket\")",
            "machine.wait_for_unit(\"handoff.sockt\")",
            "machine.wait_for_unit(\"handoff.sockt\")\n",
        ),
    ];
    // A script that hangs ends at the global timeout, failed and named.
    let test = "activation.nix";
    let path = dir.path().join("hung.py");
    std::fs::write(
        &path,
        rendered(test).replace(
            "machine.wait_for_unit(\"handoff.socket\")",
            "machine.wait_for_unit(\"handoff.socket\")\nmachine.wait_until_succeeds(\"false\", timeout=900)",
        ),
    )
    .unwrap();
    // The binaries first (built once, on first use): the clock is the run's.
    binaries();
    let started = std::time::Instant::now();
    let (status, out) = run_within(test, nixpkgs, Some(&path), Duration::from_secs(20));
    assert_eq!(status, 1, "a hung script did not fail:\n{out}");
    assert!(
        out.contains("timeout reached; test terminating")
            && out.contains("the global timeout of 20 s was reached"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(120), "{out}");
    for (test, from, to, expected) in cases {
        let script = rendered(test);
        assert!(script.contains(from), "{test} no longer says {from:?}");
        let path = dir.path().join(test);
        std::fs::write(&path, script.replace(from, to)).unwrap();
        let (status, out) = run(test, nixpkgs, Some(&path));
        assert_eq!(status, 1, "{test} with {to:?} did not fail:\n{out}");
        assert!(
            out.contains(expected),
            "{test} with {to:?}: no {expected:?} in\n{out}"
        );
    }
}

/// The driver's semantics against the real driver's (tests/nixos/driver_test.py),
/// on a container of the nodes' image.
#[test]
fn the_driver_keeps_the_nixos_test_drivers_semantics() {
    let name = "the_driver_keeps_the_nixos_test_drivers_semantics";
    if skipped(name) {
        return;
    }
    let _one = serial();
    let image = python()
        .arg(root().join("tests/nixos/run.py"))
        .arg("--image")
        .output()
        .expect("python3");
    assert!(
        image.status.success(),
        "{}",
        String::from_utf8_lossy(&image.stderr)
    );
    let image = String::from_utf8(image.stdout).unwrap();
    let out = python()
        .arg(root().join("tests/nixos/driver_test.py"))
        .arg(image.trim())
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    assert!(out.status.success(), "tests/nixos/driver_test.py failed");
    assert!(err.contains("\nOK"), "{err}");
}

/// The checkers nixpkgs' driver derivation runs (mypy, pyflakes, ty, ruff),
/// from `$HANDOFF_SCRIPT_CHECKERS` (a bin directory; tests/run installs
/// them from tests/nixos/gates/requirements.txt), or None, the test
/// recorded as skipped.
fn script_checkers(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HANDOFF_SCRIPT_CHECKERS").map(PathBuf::from);
    match dir {
        Some(dir)
            if ["mypy", "pyflakes", "ty", "ruff"]
                .iter()
                .all(|t| dir.join(t).exists()) =>
        {
            Some(dir)
        }
        _ => {
            podman::record_skip(
                test,
                "no mypy, pyflakes, ty and ruff in $HANDOFF_SCRIPT_CHECKERS (tests/run installs them)",
            );
            None
        }
    }
}

/// Runs tests/nixos/script_checks.py with `args` on every rendered script.
fn script_checks(checkers: &Path, args: &[&str]) -> (bool, String) {
    let rendered = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(root().join(".ci/vm-test-scripts.nix"))
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut child = python()
        .arg(root().join("tests/nixos/script_checks.py"))
        .arg("--tools")
        .arg(checkers)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &rendered.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every VM test script passes what nixpkgs checks before a VM boots:
/// mypy and pyflakes (NixOS 25.11), ty and ruff (26.05 and later).
#[test]
fn every_vm_test_script_passes_the_drivers_type_check_and_lint() {
    let name = "every_vm_test_script_passes_the_drivers_type_check_and_lint";
    let Some(checkers) = script_checkers(name) else {
        return;
    };
    let (ok, out) = script_checks(&checkers, &[]);
    println!("{out}");
    assert!(ok, "a VM test script fails the driver's checks (above)");
}

/// The checks can fail: `machine.sleep(0.5)`, a duplicate import, a method
/// the driver has not, an undefined name and `.group()` on a possible None
/// each fail the checkers that must catch them.
#[test]
fn the_script_checks_fail_on_known_defects() {
    let name = "the_script_checks_fail_on_known_defects";
    let Some(checkers) = script_checkers(name) else {
        return;
    };
    let (ok, out) = script_checks(&checkers, &["--self-test"]);
    println!("{out}");
    assert!(ok, "the script checks' self-test failed (above)");
}

/// The switch-to-configuration stand-in decides as the real one does
/// (tests/nixos/switch_test.py: units compared by their parsed content,
/// drop-ins, X-Reload-Triggers, activating units, sockets, templates),
/// without systemd: the decisions are pure functions of the two systems.
#[test]
fn the_switch_stand_in_decides_as_switch_to_configuration_ng() {
    let out = Command::new(support::python())
        .arg(root().join("tests/nixos/switch_test.py"))
        .output()
        .expect("python3 tests/nixos/switch_test.py");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    assert!(out.status.success(), "tests/nixos/switch_test.py failed");
    assert!(err.contains("\nOK"), "{err}");
}
