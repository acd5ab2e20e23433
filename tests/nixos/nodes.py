"""What each node of a VM test is, made from the NixOS module's evaluation
(nix/eval/vm-test.nix): its systems (the node's toplevel and each
specialisation's, each with its units and the host name and address the
test framework builds into it), its /etc and, for nodes that enable it,
HAProxy. The store is one host directory every node's container mounts
read-only at /nix/store, as the VMs of a test share the host's store: a
script may run any node's system on any node."""

import json
import os
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZEROS = "0" * 32
STORE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-[^/\s\"']+")


# services.haproxy as nixos/modules/services/networking/haproxy.nix renders
# it (with Debian's haproxy binary): its configuration file and unit.
HAPROXY_GLOBAL = """global
  # needed for hot-reload to work without dropping packets in multi-worker mode
  stats socket /run/haproxy/haproxy.sock mode 600 expose-fd listeners level user

"""
HAPROXY_UNIT = """[Unit]
Description=HAProxy
After=network.target

[Service]
User=haproxy
Group=haproxy
Type=notify
ExecStartPre=/usr/bin/ln -sf /usr/sbin/haproxy /run/haproxy/haproxy
ExecStartPre=/run/haproxy/haproxy -c -f /etc/haproxy.cfg
ExecStart=/run/haproxy/haproxy -Ws -f /etc/haproxy.cfg -p /run/haproxy/haproxy.pid
ExecReload=/usr/sbin/haproxy -c -f /etc/haproxy.cfg
ExecReload=/usr/bin/ln -sf /usr/sbin/haproxy /run/haproxy/haproxy
ExecReload=/usr/bin/kill -USR2 $MAINPID
KillMode=mixed
SuccessExitStatus=143
Restart=always
RuntimeDirectory=haproxy
NoNewPrivileges=true
ProtectHome=true
ProtectSystem=strict
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
SystemCallFilter=~@cpu-emulation @keyring @module @obsolete @raw-io @reboot @swap @sync
AmbientCapabilities=CAP_NET_BIND_SERVICE

[Install]
WantedBy=multi-user.target
"""


def toml(settings: dict) -> str:
    """The TOML file pkgs.formats.toml writes for `settings`: scalars and
    arrays, then one table per nested attribute set."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return json.dumps(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise ValueError(f"no TOML value for {v!r}")

    def table(prefix: list[str], d: dict, out: list[str]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        if prefix and (scalars or not any(isinstance(v, dict) for v in d.values())):
            out.append(f"[{'.'.join(json.dumps(p) if not re.fullmatch(r'[A-Za-z0-9_-]+', p) else p for p in prefix)}]")
        for k, v in scalars.items():
            out.append(f"{json.dumps(k)} = {value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                table([*prefix, k], v, out)

    out: list[str] = []
    table([], settings, out)
    return "\n".join(out) + "\n"


def as_installed(text: str) -> str:
    """A unit's text as the nodes' systemd must see it to act as NixOS's.
    The nodes run Debian 12's systemd 252; NixOS 26.05 runs 258. Since 254,
    systemd tells a service its fd store's size in $FDSTORE (the maximum
    of FileDescriptorStoreMax=, when non-zero: systemd.exec(5)), which is
    how handoff knows it may store idle connections at a stop. On 252 a
    service gets no such variable, so without this every restart here
    would run without the store NixOS gives it: its idle connections kept
    until their keep-alive timeout instead of stored, a path no NixOS
    machine takes. The module sets no FDSTORE itself (nix/module.nix),
    so the harness adds what 254 adds, in the [Service] section."""
    out, section, size, has_env = [], "", 0, False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[Service]" and stripped.startswith("FileDescriptorStoreMax="):
            value = stripped.split("=", 1)[1].strip()
            size = int(value) if value.isdigit() else 0
        elif section == "[Service]" and "FDSTORE=" in stripped and stripped.startswith("Environment"):
            has_env = True
    for line in text.splitlines():
        out.append(line)
        if size > 0 and not has_env and line.strip().startswith("FileDescriptorStoreMax="):
            out.append(f'Environment="FDSTORE={size}"')
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def wanted_by(text: str) -> list[str]:
    return [t for line in text.splitlines() if line.startswith("WantedBy=") for t in line[9:].split()]


class Binaries:
    """The binaries the stand-in packages stand for, built by the caller:
    handoff by build id (HANDOFF_BUILD_ID), and the other workspace
    binaries (hello, loadgen) by package name."""

    def __init__(self, handoff: dict[str, Path], others: dict[str, Path], python_packages: Path | None = None):
        self.handoff = handoff
        self.others = others
        # site-packages for the scripts' Python environments, or None.
        self.python_packages = python_packages


class Node:
    """One node's evaluation: its systems in the shared store, its /etc."""

    def __init__(self, name: str, evaluated: dict):
        self.name = name
        self.system = evaluated
        # `nodes.NAME.system.build.toplevel`, as .ci/vm-test-scripts.nix
        # renders it.
        self.toplevel = f"/nix/store/{ZEROS}-toplevel-{name}"

    def failed_assertions(self) -> list[str]:
        failed = list(self.system["failed"])
        for spec, system in self.system["specialisations"].items():
            failed += [f"specialisation {spec}: {m}" for m in system["failed"]]
        return failed

    def uses_haproxy(self) -> bool:
        return bool(self.system["haproxy"].get("enable"))

    @property
    def network(self) -> dict:
        """What nixos/lib/testing/network.nix built into this node's system:
        hostName, address, extraHosts."""
        return self.system["network"]

    def systems(self) -> list[dict]:
        return [self.system, *self.system["specialisations"].values()]

    def build_etc(self, etc: Path) -> None:
        """/etc as NixOS activates the node's own system: the units, their
        targets' wants, /run/current-system, the host name and /etc/hosts,
        HAProxy's configuration."""
        (etc / "systemd/system").mkdir(parents=True)
        for unit, text in self.system["units"].items():
            (etc / "systemd/system" / unit).write_text(as_installed(text))
            for target in wanted_by(text):
                wants = etc / "systemd/system" / f"{target}.wants"
                wants.mkdir(exist_ok=True)
                os.symlink(f"../{unit}", wants / unit)
        # users.groups, made at boot as NixOS makes them: by sysusers.
        if self.system["groups"]:
            (etc / "sysusers.d").mkdir()
            (etc / "sysusers.d/nixos-groups.conf").write_text("".join(f"g {g} -\n" for g in self.system["groups"]))
        (etc / "tmpfiles.d").mkdir()
        (etc / "tmpfiles.d/current-system.conf").write_text(f"L+ /run/current-system - - - - {self.toplevel}\n")
        (etc / "hostname").write_text(self.network["hostName"] + "\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n" + self.network["extraHosts"])
        if self.uses_haproxy():
            (etc / "haproxy.cfg").write_text(HAPROXY_GLOBAL + self.system["haproxy"]["config"])
            (etc / "systemd/system/haproxy.service").write_text(HAPROXY_UNIT)
            wants = etc / "systemd/system/multi-user.target.wants"
            wants.mkdir(exist_ok=True)
            os.symlink("../haproxy.service", wants / "haproxy.service")


def build_store(store: Path, nodes: list[Node], binaries: Binaries, script: str) -> None:
    """The store every node mounts read-only at /nix/store, as the VMs of
    a test share the host's: every node's systems (its toplevel and each
    specialisation, each with its units, its identity and the stand-in
    switch-to-configuration), the packages they name, and Debian's /usr for
    every other store path the units and the script name (coreutils, curl,
    systemd...)."""
    store.mkdir(parents=True)

    def put(path: str) -> Path:
        return store / path.removeprefix("/nix/store/")

    systems = [s for node in nodes for s in node.systems()]
    for system in systems:
        packages = [app["package"] for app in system["apps"].values()] + system["packages"]
        for p in packages:
            target = put(p["executable"])
            if target.exists():
                continue
            if p["script"] is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"#!/bin/bash\n{p['script']}\n")
                target.chmod(0o555)
            elif p["build"] is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(binaries.handoff[p["build"]], target)
            elif p["name"] in binaries.others:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(binaries.others[p["name"]], target)
        for app in system["apps"].values():
            config = put(app["config"]["path"])
            if not config.exists():
                config.write_text(toml(app["config"]["settings"]))

    def toplevel(path: str, system: dict) -> None:
        top = put(path)
        (top / "bin").mkdir(parents=True)
        shutil.copy(HERE / "switch-to-configuration", top / "bin/switch-to-configuration")
        units = top / "etc/systemd/system"
        units.mkdir(parents=True)
        for unit, text in system["units"].items():
            (units / unit).write_text(as_installed(text))
        (top / "network.json").write_text(json.dumps(system["network"]))

    for node in nodes:
        toplevel(node.toplevel, node.system)
        for spec, system in node.system["specialisations"].items():
            path = f"{node.toplevel}-{spec}"
            toplevel(path, system)
            (put(node.toplevel) / "specialisation").mkdir(exist_ok=True)
            os.symlink(path, put(node.toplevel) / "specialisation" / spec)

    texts = [script] + [t for s in systems for t in s["units"].values()]
    for path in sorted({m for t in texts for m in STORE_PATH.findall(t)}):
        target = put(path)
        if os.path.lexists(target) or "-toplevel-" in path:
            continue
        env = PYTHON_ENV.search(path)
        if Path(path).exists():
            # In the host's store: a file of this repository the script
            # names, added by the evaluation. The same bytes.
            if Path(path).is_dir():
                shutil.copytree(path, target, symlinks=True)
            else:
                shutil.copy(path, target)
        elif env is not None:
            python_env(path, target, env.group(1).split("-"), binaries.python_packages)
        else:
            os.symlink("/usr", target)


# python3.withPackages as .ci/vm-test-scripts.nix names it.
PYTHON_ENV = re.compile(r"-python3-env-([a-z0-9-]+)$")


def python_env(path: str, target: Path, packages: list[str], site: Path | None) -> None:
    """A stand-in for python3.withPackages at store path `path` (`target`
    on the host): bin/python3 runs the node's Python (Debian's) with `site`
    (packages from PyPI, for that Python's version), copied into the
    store, on its path."""
    missing = [p for p in packages if site is None or not (site / p).is_dir()]
    if missing:
        raise SystemExit(
            f"error: the script's Python needs {', '.join(missing)}: give --python-packages"
            " a site-packages directory that has it (tests/run's target/h3-client venv)"
        )
    assert site is not None
    shutil.copytree(site, target / "site-packages", symlinks=True)
    (target / "bin").mkdir()
    python = target / "bin/python3"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={path}/site-packages exec /usr/bin/python3 "$@"\n')
    python.chmod(0o555)
