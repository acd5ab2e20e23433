#!/usr/bin/env python3
"""The checks nixpkgs' test driver derivation runs on a VM test's script
before any VM boots, run here on the scripts .ci/vm-test-scripts.nix
renders (JSON on stdin: {file: {source, nodes}}). A script that fails one
fails `nix flake check` there, so it fails here.

Two generations of nixos/lib/testing/driver.nix, both run:

- mypy + pyflakes (NixOS 25.11): the file mypy checks is the prepend
  (gates/prepend_mypy.py), one line of `NAME: QemuMachine;` hints (node
  names pythonized, `machine` added when there is exactly one node and
  none is called so), an empty line for container hints, an empty line for
  vlan hints (each line written by `echo`), then the script with no newline
  added; `mypy --no-implicit-optional --pretty --no-color-output` on it.
  Then `pyflakes` on the script alone, with PYFLAKES_BUILTINS set to the
  node names, a comma, and the driver's symbols (generate-driver-symbols:
  the keys of Driver.test_symbols()).
- ty + ruff (NixOS 26.05 and later, nixpkgs PR #509615): the prepend
  (gates/prepend_ty.py), each node bound to a fake machine, then the
  script; `ty check` and `ruff check --select F` on that file. nixpkgs'
  exact ty command line and binding lines were not readable; these are
  the checker's defaults and the bindings the prepend's own comment says
  driver.nix writes.

Both type-check against tests/nixos/driver.py through gates/test_driver/,
whose classes carry the real driver's method signatures.

  script_checks.py --tools DIR [--only mypy|ty] < rendered.json
  script_checks.py --tools DIR --self-test < rendered.json

--tools names the bin directory holding mypy, pyflakes, ty and ruff.
--self-test proves each check can fail: a script that calls
`machine.sleep(0.5)`, one that imports a module twice, one that calls a
method the driver has not, one that reads an undefined name, one that
calls `.group()` on a possible None; each must fail, and the unchanged
script must pass. Exit status 0 when every script passes, 1 otherwise.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GATES = HERE / "gates"

# generate-driver-symbols: the names Driver.test_symbols() gives a script
# (nixpkgs' driver.py), joined by commas. Checked against our driver's own
# test_symbols() below, so the two cannot drift apart.
DRIVER_SYMBOLS = [
    "start_all", "test_script", "machines", "machines_qemu", "machines_nspawn",
    "vlans", "driver", "log", "os", "create_machine", "subtest", "run_tests",
    "join_all", "retry", "serial_stdout_off", "serial_stdout_on",
    "polling_condition", "BaseMachine", "QemuMachine", "NspawnMachine", "t",
    "debug", "dump_machine_ssh",
]


def pythonize(name: str) -> str:
    """driver.nix's pythonizeName: a first character outside [A-z_] and any
    later one outside [A-z0-9_] become `_` (A-z as the Nix regex has it)."""
    head = name[:1] if re.fullmatch(r"[A-z_]", name[:1]) else "_"
    return head + "".join(c if re.fullmatch(r"[A-z0-9_]", c) else "_" for c in name[1:])


def vm_names(nodes: list[str]) -> list[str]:
    names = list(nodes)
    if len(nodes) == 1 and "machine" not in nodes:
        names.append("machine")
    return [pythonize(n) for n in names]


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return done.returncode, done.stdout


class Checks:
    def __init__(self, tools: Path, work: Path):
        self.tools = tools
        self.work = work
        # The driver package mypy and ty import: gates/test_driver, which
        # re-exports tests/nixos/driver.py.
        self.search_path = f"{GATES}{os.pathsep}{HERE}"

    def tool(self, name: str) -> str:
        path = self.tools / name
        if not path.exists():
            sys.exit(f"error: {path} not found (tests/run installs the checkers; see --tools)")
        return str(path)

    def mypy(self, name: str, source: str, nodes: list[str]) -> tuple[int, str]:
        hints = " ".join(f"{n}: QemuMachine;" for n in vm_names(nodes))
        # Four `>>` appends in driver.nix: the prepend as is, then three
        # `echo` lines (VM hints, container hints, vlan hints), then the
        # script with `echo -n`.
        text = (GATES / "prepend_mypy.py").read_text() + f"{hints}\n" + "\n" + "\n" + source
        path = self.work / name / "testScriptWithTypes"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return run(
            [self.tool("mypy"), "--no-implicit-optional", "--pretty", "--no-color-output",
             "--python-version", "3.13", "--cache-dir", str(self.work / ".mypy_cache"), str(path)],
            cwd=path.parent, env={"MYPYPATH": self.search_path},
        )

    def pyflakes(self, name: str, source: str, nodes: list[str]) -> tuple[int, str]:
        path = self.work / name / "test-script"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        builtins = ",".join(vm_names(nodes)) + "," + ",".join(DRIVER_SYMBOLS)
        return run([self.tool("pyflakes"), str(path)], cwd=path.parent, env={"PYFLAKES_BUILTINS": builtins})

    def ty_file(self, name: str, source: str, nodes: list[str]) -> Path:
        bindings = "".join(f"{n} = create_fake_qemu_machine()\n" for n in vm_names(nodes))
        path = self.work / name / "testScriptWithTypes.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((GATES / "prepend_ty.py").read_text() + bindings + source)
        return path

    def ty(self, name: str, source: str, nodes: list[str]) -> tuple[int, str]:
        path = self.ty_file(name, source, nodes)
        return run(
            [self.tool("ty"), "check", "--python-version", "3.13", "--no-progress", "--color", "never",
             "--extra-search-path", str(GATES), "--extra-search-path", str(HERE), str(path)],
            cwd=path.parent,
        )

    def ruff(self, name: str, source: str, nodes: list[str]) -> tuple[int, str]:
        path = self.ty_file(name, source, nodes)
        return run(
            [self.tool("ruff"), "check", "--no-cache", "--isolated", "--select", "F",
             "--output-format", "concise", str(path)],
            cwd=path.parent,
        )

    def all(self, only: str | None) -> list[tuple[str, callable]]:
        checks = [("mypy", self.mypy), ("pyflakes", self.pyflakes), ("ty", self.ty), ("ruff", self.ruff)]
        era = {"mypy": ("mypy", "pyflakes"), "ty": ("ty", "ruff")}
        return [c for c in checks if only is None or c[0] in era[only]]


def check_all(checks: Checks, scripts: dict, only: str | None) -> int:
    failed = 0
    for test, script in sorted(scripts.items()):
        for tool, check in checks.all(only):
            status, out = check(test.removesuffix(".nix"), script["source"], script["nodes"])
            if status == 0:
                print(f"ok      {test}: {tool}")
            else:
                failed += 1
                print(f"FAILED  {test}: {tool}\n" + "".join(f"    {line}\n" for line in out.splitlines()))
    print(f"{len(scripts)} scripts, {failed} failed checks")
    return 1 if failed else 0


# Each mutation, and the checks (by tool) that must fail on it.
MUTATIONS = [
    ("machine.sleep(0.5)", "\nmachine.sleep(0.5)\n", {"mypy", "ty"}),
    ("a duplicate import", "import json\nimport json\nprint(json)\n", {"pyflakes", "ruff"}),
    ("a method the driver has not", "\nmachine.succed('true')\n", {"mypy", "ty"}),
    ("an undefined name", "\nundefined_helper()\n", {"mypy", "pyflakes", "ty", "ruff"}),
    (".group() on a possible None", "\nimport re\nre.search('a', 'b').group(0)\n", {"mypy", "ty"}),
]


def self_test(checks: Checks, scripts: dict) -> int:
    """Every check passes the unchanged script and fails each mutation it must."""
    single = sorted(t for t, s in scripts.items() if len(s["nodes"]) == 1)[0]
    base = scripts[single]
    problems = []
    for tool, check in checks.all(None):
        status, out = check(f"self-{tool}-base", base["source"], base["nodes"])
        if status != 0:
            problems.append(f"{tool} fails the unchanged {single}:\n{out}")
    for what, text, must_fail in MUTATIONS:
        for tool, check in checks.all(None):
            source = text + base["source"] if what == "a duplicate import" else base["source"] + text
            status, out = check(f"self-{tool}-{len(problems)}-{abs(hash(what))}", source, base["nodes"])
            if tool in must_fail and status == 0:
                problems.append(f"{tool} passes {single} with {what}")
            elif tool in must_fail:
                first = next((line for line in out.splitlines() if "error" in line.lower() or ":" in line), "")
                print(f"ok      {tool} fails {what}: {first.strip()}")
    # The driver symbols above are the ones tests/nixos/driver.py gives.
    sys.path.insert(0, str(HERE))
    from driver import Driver, Logger  # noqa: E402

    ours = sorted(Driver([], "", Logger()).test_symbols())
    if ours != sorted(DRIVER_SYMBOLS):
        problems.append(f"driver.py's test_symbols() {ours} differ from the real driver's {sorted(DRIVER_SYMBOLS)}")
    for p in problems:
        print(f"FAILED  {p}")
    print(f"self-test: {len(MUTATIONS)} mutations, {len(problems)} problems")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", required=True, type=Path)
    parser.add_argument("--only", choices=["mypy", "ty"])
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    scripts = json.load(sys.stdin)
    with tempfile.TemporaryDirectory(prefix="handoff-script-checks-") as work:
        checks = Checks(args.tools.resolve(), Path(work))
        if args.self_test:
            return self_test(checks, scripts)
        return check_all(checks, scripts, args.only)


if __name__ == "__main__":
    sys.exit(main())
