"""What each node of a VM test is, made from the NixOS module's evaluation
(nix/eval/vm-test.nix): its /nix/store, its unit files, its systems (the
node's toplevel and each specialisation's) and, for nodes that enable it,
HAProxy. The store is a host directory the container mounts read-only at
/nix/store, as a NixOS machine sees its store."""

import hashlib
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


def wanted_by(text: str) -> list[str]:
    return [t for line in text.splitlines() if line.startswith("WantedBy=") for t in line[9:].split()]


def system_key(system: dict) -> str:
    """Two nodes with equal keys have the same system (the same toplevel)."""
    return hashlib.sha256(json.dumps(system, sort_keys=True).encode()).hexdigest()


class Binaries:
    """The binaries the stand-in packages stand for, built by the caller:
    handoff by build id (HANDOFF_BUILD_ID), and the other workspace
    binaries (hello, loadgen) by package name."""

    def __init__(self, handoff: dict[str, Path], others: dict[str, Path]):
        self.handoff = handoff
        self.others = others


class Node:
    """One node's evaluation, laid out as a store and an /etc for its container."""

    def __init__(self, name: str, evaluated: dict, toplevels: dict[str, str]):
        self.name = name
        self.system = evaluated
        # The toplevel store paths the test script may name on this node:
        # its own, and those of nodes with the same system.
        self.toplevels = toplevels

    def failed_assertions(self) -> list[str]:
        failed = list(self.system["failed"])
        for spec, system in self.system["specialisations"].items():
            failed += [f"specialisation {spec}: {m}" for m in system["failed"]]
        return failed

    def uses_haproxy(self) -> bool:
        return bool(self.system["haproxy"].get("enable"))

    def build(self, root: Path, binaries: Binaries, script: str) -> tuple[Path, Path]:
        """Writes the node's store and /etc under `root`: (store, etc)."""
        store = root / "store"
        etc = root / "etc"
        store.mkdir(parents=True)
        (etc / "systemd/system").mkdir(parents=True)
        systems = [self.system, *self.system["specialisations"].values()]

        def put(path: str) -> Path:
            return store / path.removeprefix("/nix/store/")

        # Packages: handoff builds, workspace binaries, shell scripts.
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

        # Systems: this node's toplevel (under every name the script may use
        # for it) with its units and the stand-in switch-to-configuration,
        # and one per specialisation.
        def toplevel(path: str, system: dict) -> None:
            top = put(path)
            (top / "bin").mkdir(parents=True)
            shutil.copy(HERE / "switch-to-configuration", top / "bin/switch-to-configuration")
            units = top / "etc/systemd/system"
            units.mkdir(parents=True)
            for unit, text in system["units"].items():
                (units / unit).write_text(text)

        own = self.toplevels[self.name]
        toplevel(own, self.system)
        for spec, system in self.system["specialisations"].items():
            path = f"{own}-{spec}"
            toplevel(path, system)
            (put(own) / "specialisation").mkdir(exist_ok=True)
            os.symlink(path, put(own) / "specialisation" / spec)
        for path in self.toplevels.values():
            if path != own and not put(path).exists():
                os.symlink(own, put(path))

        # Everything else the units and the script name (coreutils, curl,
        # systemd...): Debian's, under /usr.
        texts = [script] + [t for s in systems for t in s["units"].values()]
        for path in sorted({m for t in texts for m in STORE_PATH.findall(t)}):
            target = put(path)
            # Another system's toplevel is not in this node's store.
            if not os.path.lexists(target) and "-toplevel-" not in path:
                os.symlink("/usr", target)

        # /etc as NixOS activates it: the units, their targets' wants,
        # /run/current-system, HAProxy's configuration.
        for unit, text in self.system["units"].items():
            (etc / "systemd/system" / unit).write_text(text)
            for target in wanted_by(text):
                wants = etc / "systemd/system" / f"{target}.wants"
                wants.mkdir(exist_ok=True)
                os.symlink(f"../{unit}", wants / unit)
        # users.groups, made at boot as NixOS makes them: by sysusers.
        if self.system["groups"]:
            (etc / "sysusers.d").mkdir()
            (etc / "sysusers.d/nixos-groups.conf").write_text(
                "".join(f"g {g} -\n" for g in self.system["groups"])
            )
        (etc / "tmpfiles.d").mkdir()
        (etc / "tmpfiles.d/current-system.conf").write_text(f"L+ /run/current-system - - - - {own}\n")
        if self.uses_haproxy():
            (etc / "haproxy.cfg").write_text(HAPROXY_GLOBAL + self.system["haproxy"]["config"])
            (etc / "systemd/system/haproxy.service").write_text(HAPROXY_UNIT)
            wants = etc / "systemd/system/multi-user.target.wants"
            wants.mkdir(exist_ok=True)
            os.symlink("../haproxy.service", wants / "haproxy.service")
        return store, etc


def toplevels_of(nodes: dict[str, dict]) -> dict[str, dict[str, str]]:
    """For each node, the toplevel paths it holds by node name: its own
    (`/nix/store/...-toplevel-NAME`, as .ci/vm-test-scripts.nix renders
    `nodes.NAME.system.build.toplevel`) and those of every node whose
    system is the same, as in a real store where equal systems share a path."""
    keys = {name: system_key(system) for name, system in nodes.items()}
    return {
        name: {
            other: f"/nix/store/{ZEROS}-toplevel-{other}"
            for other in nodes
            if keys[other] == keys[name]
        }
        for name in nodes
    }
