"""Checks the Python that the NixOS VM tests run, rendered by
vm-test-scripts.nix: it must parse, and every name it reads must be defined
in the script, a Python builtin, or given by the NixOS test driver (its
functions, and one variable per node)."""

import ast
import builtins
import json
import sys

DRIVER = {"start_all", "subtest", "driver", "log", "join_all"}

scripts = json.load(sys.stdin)
failed = False
for name, rendered in sorted(scripts.items()):
    source = rendered["source"]
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as e:
        print(f"{name}: {e}")
        failed = True
        continue
    defined = set(DRIVER) | set(rendered["nodes"]) | set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
            defined.update(a.arg for a in node.args.args + node.args.kwonlyargs)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    unknown = sorted(
        {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        - defined
    )
    if unknown:
        print(f"{name}: undefined names {unknown}")
        failed = True
    else:
        print(f"{name}: ok")
sys.exit(1 if failed else 0)
