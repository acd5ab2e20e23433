"""Checks the Python that the NixOS VM tests run, as rendered by
vm-test-scripts.nix (JSON on stdin: {file: {source, nodes}}).

A script must parse, and:
- every name it reads resolves in its scope, as Python resolves it (a
  function's own names, then the enclosing functions', then the script's
  top level), or is a Python builtin, or is one of the names the NixOS test
  driver gives a script (its functions and one variable per node);
- every attribute it uses on a machine (a node's variable, or a variable
  that can only hold nodes: a list of nodes, a loop over one, a parameter
  every call passes a node to) is a method of the driver's Machine.

The driver's names are those of nixpkgs' nixos/lib/test-driver
(src/test_driver/driver.py, Driver.test_symbols; machine/__init__.py,
BaseMachine and QemuMachine), read at commit 019697db058b.

`--self-test` checks the checker: scripts with a misspelt method, an
undefined name, or a name used outside its scope must fail.
"""

import ast
import builtins
import json
import symtable
import sys

DRIVER_GLOBALS = {
    "start_all", "test_script", "machines_qemu", "machines_nspawn", "vlans",
    "driver", "log", "os", "create_machine", "subtest", "run_tests",
    "join_all", "retry", "serial_stdout_off", "serial_stdout_on",
    "polling_condition", "BaseMachine", "t", "debug",
}

MACHINE_METHODS = {
    # BaseMachine
    "log", "log_serial", "nested", "is_up", "start", "wait_for_shutdown",
    "systemctl", "wait_for_unit", "get_unit_info", "get_unit_property",
    "require_unit_state", "succeed", "fail", "wait_until_succeeds",
    "wait_until_fails", "sleep", "wait_for_file", "wait_for_open_port",
    "wait_for_open_unix_socket", "wait_for_closed_port", "start_job",
    "stop_job", "execute", "run_callbacks", "cleanup_statedir",
    "copy_from_machine", "copy_from_vm", "copy_from_host_via_shell",
    "copy_from_host",
    # QemuMachine
    "ssh_backdoor_command", "send_monitor_command", "get_tty_text",
    "wait_until_tty_matches", "dump_tty_contents", "shell_interact",
    "console_interact", "wait_for_qmp_event", "send_chars", "connect",
    "screenshot", "get_screen_text_variants", "get_screen_text",
    "wait_for_text", "wait_for_console_text", "get_console_log", "send_key",
    "send_console", "shutdown", "crash", "reboot", "wait_for_x",
    "get_window_names", "wait_for_window", "forward_port", "block",
    "unblock", "release", "switch_root",
    # attributes
    "name", "pid", "process", "booted", "connected", "state_dir",
    "shared_dir", "out_dir", "logger", "callbacks",
}


def scope_errors(name: str, source: str, known: set[str]) -> list[str]:
    """Names read that resolve nowhere, by Python's own scoping."""
    errors = []
    top = symtable.symtable(source, name, "exec")
    top_defined = {
        s.get_name()
        for s in top.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    }
    globals_ok = known | top_defined

    def walk(table: symtable.SymbolTable) -> None:
        for s in table.get_symbols():
            if not s.is_referenced():
                continue
            module = table.get_type() == "module"
            if module and s.get_name() not in globals_ok:
                errors.append(f"undefined name {s.get_name()!r}")
            elif not module and s.is_global() and s.get_name() not in globals_ok:
                errors.append(
                    f"name {s.get_name()!r} in {table.get_name()}() is defined in no enclosing scope"
                )
        for child in table.get_children():
            walk(child)

    walk(top)
    return errors


def machine_errors(tree: ast.AST, machines: set[str]) -> list[str]:
    """Attributes used on machines that the driver's Machine does not have."""
    machines = set(machines)
    lists: set[str] = set()
    params: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            params[node.name] = [a.arg for a in node.args.args]

    def is_machine(e: ast.expr) -> bool:
        return isinstance(e, ast.Name) and e.id in machines

    # Grow what can only hold machines until nothing changes.
    for _ in range(10):
        before = (len(machines), len(lists))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
                if node.value.elts and all(is_machine(e) for e in node.value.elts):
                    lists.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and node.iter.id in lists:
                if isinstance(node.target, ast.Name):
                    machines.add(node.target.id)
            elif (
                isinstance(node, ast.For)
                and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Name)
                and node.iter.func.id == "enumerate"
                and node.iter.args
                and isinstance(node.iter.args[0], ast.Name)
                and node.iter.args[0].id in lists
                and isinstance(node.target, ast.Tuple)
                and isinstance(node.target.elts[-1], ast.Name)
            ):
                machines.add(node.target.elts[-1].id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                for i, arg in enumerate(node.args):
                    names = params.get(node.func.id, [])
                    if i < len(names) and is_machine(arg):
                        machines.add(names[i])
        if (len(machines), len(lists)) == before:
            break
    return sorted(
        {
            f"{node.value.id}.{node.attr}: the test driver's machines have no {node.attr!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and is_machine(node.value)
            and node.attr not in MACHINE_METHODS
        }
    )


def check(name: str, source: str, nodes: list[str]) -> list[str]:
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as e:
        return [str(e)]
    node_vars = set(nodes) | ({"machine"} if len(nodes) == 1 else set())
    known = DRIVER_GLOBALS | node_vars | set(dir(builtins))
    return scope_errors(name, source, known) + machine_errors(tree, node_vars)


def self_test() -> None:
    good = "machine.succeed('true')\ndef f(m):\n    return m.wait_for_unit('x')\nf(machine)\n"
    assert check("good", good, ["machine"]) == [], check("good", good, ["machine"])
    bad = {
        "misspelt method": ("machine.succed('true')", ["machine"]),
        "misspelt through a parameter": ("def f(m):\n    m.wait_for_unti('x')\nf(machine)\n", ["machine"]),
        "misspelt through a loop": ("ws = [a, b]\nfor w in ws:\n    w.sleeep(1)\n", ["a", "b"]),
        "undefined name": ("start_al()", ["machine"]),
        "a local of another function": ("def f():\n    x = 1\ndef g():\n    return x\n", ["machine"]),
        "a node the test does not have": ("web4.succeed('true')", ["web1", "web2"]),
    }
    for what, (source, nodes) in bad.items():
        assert check(what, source, nodes), f"the checker let through {what}: {source!r}"
    print(f"self-test: {len(bad)} bad scripts refused, a good one passed")


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    scripts = json.load(sys.stdin)
    failed = False
    for name, rendered in sorted(scripts.items()):
        errors = check(name, rendered["source"], rendered["nodes"])
        for e in errors:
            print(f"{name}: {e}")
        failed |= bool(errors)
        if not errors:
            print(f"{name}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
