#!/usr/bin/env python3
"""Runs one VM test of nix/tests/ here, without QEMU or nixpkgs: its script,
exactly as .ci/vm-test-scripts.nix renders it, against one systemd container
per node (podman), each holding the units and packages the NixOS module
renders for that node (nix/eval/vm-test.nix, through nixpkgs' real lib and
systemd unit code). The nodes share a podman network and reach each other by
node name. Specialisations are switched to by a stand-in of
switch-to-configuration (tests/nixos/switch-to-configuration).

  tests/nixos/run.py TEST.nix --nixpkgs DIR --handoff BUILD=PATH... --bin NAME=PATH...
                    [--python-packages DIR] [--script FILE]
  tests/nixos/run.py --list
  tests/nixos/run.py --image

--handoff gives the handoff binary built with HANDOFF_BUILD_ID=BUILD (the
nix/package.nix builds the tests name: nix, v2); --bin the other workspace
binaries by package name (hello, loadgen); --python-packages a
site-packages directory (of Debian's Python's version) holding what the
scripts' Python environments (python3.withPackages) take, e.g. aioquic from
PyPI. --script runs another script
text on the test's nodes (the suite proves with it that a failing assertion
fails the run). --list prints, as JSON, each test and why it cannot run here
(null when it runs); --image builds the nodes' image if needed and prints
its name.

Exit status: 0 when the script ran to the end, 1 when it failed, 2 when the
test cannot run here or the harness could not set it up.
"""

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import Driver, Logger, QemuMachine  # noqa: E402
from nodes import Binaries, Node, build_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGE_BASE = "localhost/debian-systemd:bookworm"

# The tests that cannot run here, and why. Every other file in nix/tests/ runs.
CANNOT_RUN_HERE = {
    "image.nix": (
        "boots packages.container, a NixOS system image that only Nix with nixpkgs can build, "
        "under podman inside a VM; there is no nixpkgs here. The Debian image's run under "
        "podman --systemd=always is tests/container.rs, the_image_serves_on_a_published_port."
    ),
}


def die(message: str) -> NoReturn:
    """Exit status 2: the harness could not set the test up (not a failure
    of the test's script, which is 1)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def tests() -> list[str]:
    return sorted(p.name for p in (ROOT / "nix/tests").glob("*.nix"))


def nix_eval(*args: str) -> dict:
    done = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Debian's nix-bin names a build group that need not exist; nothing is built.
        env={**os.environ, "NIX_CONFIG": "build-users-group ="},
    )
    if done.returncode != 0:
        die(f"error: nix-instantiate {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def podman(*args: str, check: bool = True) -> str:
    done = subprocess.run(["podman", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and done.returncode != 0:
        die(f"error: podman {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def node_image() -> str:
    """The nodes' image, built once per content of its Containerfile and
    the script it shares with containers/Containerfile."""
    containerfile = Path(__file__).resolve().parent / "Containerfile"
    shared = ROOT / "containers/systemd-in-container.sh"
    digest = hashlib.sha256(containerfile.read_bytes() + shared.read_bytes()).hexdigest()
    tag = f"localhost/handoff-nixos-node:{digest[:12]}"
    if subprocess.run(["podman", "image", "exists", tag]).returncode != 0:
        # Their output to stderr: stdout is for the image's name (--image).
        subprocess.run([str(ROOT / "containers/make-base-image.sh"), IMAGE_BASE], check=True, stdout=sys.stderr)
        subprocess.run(
            ["podman", "build", "--network=host", "--build-arg", f"BASE_IMAGE={IMAGE_BASE}",
             "-f", str(containerfile), "-t", tag, str(shared.parent)],
            check=True,
            stdout=sys.stderr,
        )
    return tag


def remove_stale_networks() -> None:
    """The networks of runs that died without removing theirs: vlan 1's
    subnet can be had by one network at a time."""
    for name in podman("network", "ls", "--filter", "label=handoff-vm", "--format", "{{.Name}}").split():
        if not podman("ps", "-a", "--filter", f"network={name}", "--format", "{{.Names}}"):
            podman("network", "rm", name, check=False)


# vlan 1 as nixos/lib/testing/network.nix numbers it: 192.168.1.N for node N.
VLAN1 = ipaddress.IPv4Network("192.168.1.0/24")


def host_subnets() -> list[ipaddress.IPv4Network]:
    """The subnets podman refuses a new network in: the host's own
    interfaces' and its other networks'."""
    used = []
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            used.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    names = podman("network", "ls", "--format", "{{.Name}}").split()
    if names:
        for network in json.loads(podman("network", "inspect", *names)):
            for subnet in network.get("subnets") or []:
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.IPv4Network(subnet["subnet"]))
    return used


def vlan1() -> ipaddress.IPv4Network:
    """The subnet the nodes get: vlan 1's own, unless the host has it (a
    machine on a 192.168.1.0/24 LAN; podman then refuses the network, and
    every test would fail before a node starts); then the first free
    10.213.K.0/24, each node keeping its number .N."""
    used = host_subnets()
    candidates = [VLAN1] + [ipaddress.IPv4Network(f"10.213.{k}.0/24") for k in range(1, 255)]
    for subnet in candidates:
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    die("error: no free /24 for the nodes' network (192.168.1.0/24 and 10.213.1-254.0/24 are taken)")


def relocate(system: dict, subnet: ipaddress.IPv4Network) -> None:
    """Moves a node's system (and its specialisations') from vlan 1's
    addresses to `subnet`'s, node numbers kept."""
    if subnet == VLAN1:
        return
    old, new = "192.168.1.", str(subnet.network_address).rsplit(".", 1)[0] + "."
    network = system["network"]
    network["address"] = network["address"].replace(old, new)
    network["extraHosts"] = "\n".join(
        line.replace(old, new, 1) if line.startswith(old) else line for line in network["extraHosts"].split("\n")
    )
    for spec in system["specialisations"].values():
        relocate(spec, subnet)


def pairs(values: list[str], what: str) -> dict[str, Path]:
    out = {}
    for v in values:
        key, sep, path = v.partition("=")
        if not sep or not Path(path).is_file():
            die(f"error: {what} {v!r}: expected NAME=PATH of an existing file")
        out[key] = Path(path)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test", nargs="?")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--image", action="store_true")
    parser.add_argument("--nixpkgs")
    parser.add_argument("--handoff", action="append", default=[])
    parser.add_argument("--bin", action="append", default=[])
    parser.add_argument("--script")
    parser.add_argument("--python-packages")
    # The real driver's option and default: the whole run ends after this.
    parser.add_argument("--global-timeout", type=int, default=60 * 60)
    args = parser.parse_args()

    if args.list:
        print(json.dumps({t: CANNOT_RUN_HERE.get(t) for t in tests()}, indent=2))
        return 0
    if args.image:
        print(node_image())
        return 0
    if args.test not in tests():
        parser.error(f"{args.test!r} is not one of {tests()}")
    if args.test in CANNOT_RUN_HERE:
        print(f"{args.test} cannot run here: {CANNOT_RUN_HERE[args.test]}", file=sys.stderr)
        return 2
    if not args.nixpkgs:
        parser.error("--nixpkgs DIR (the unpacked nixpkgs-eval subset) is required")
    python_packages = Path(args.python_packages) if args.python_packages else None
    if python_packages is not None and not python_packages.is_dir():
        parser.error(f"--python-packages {python_packages}: not a directory")
    binaries = Binaries(pairs(args.handoff, "--handoff"), pairs(args.bin, "--bin"), python_packages)

    # Read-write, as Nix evaluates a test: a file of this repository the
    # script names (`${../../tests/clients/h3_clients.py}`) is added to
    # the host's store, whence build_store copies it for the nodes.
    rendered = nix_eval("--read-write-mode", str(ROOT / ".ci/vm-test-scripts.nix"))[args.test]
    script = Path(args.script).read_text() if args.script else rendered["source"]
    evaluated = nix_eval(
        str(ROOT / "nix/eval/vm-test.nix"), "--arg", "nixpkgs", args.nixpkgs, "--argstr", "file", args.test
    )
    remove_stale_networks()
    subnet = vlan1()
    for system in evaluated.values():
        relocate(system, subnet)
    nodes = [Node(name, system) for name, system in sorted(evaluated.items())]
    for node in nodes:
        if failed := node.failed_assertions():
            die(f"error: node {node.name} fails its assertions: {failed}")

    logger = Logger()
    run = f"handoff-vm-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix=f"{run}-", dir="/var/tmp"))
    image = node_image()
    created: list[str] = []
    try:
        # vlan 1 of the test framework: 192.168.1.N for node N (the
        # gateway podman needs takes .254, beyond any node's number).
        if subnet != VLAN1:
            logger.log(f"{VLAN1} is the host's: the nodes get {subnet} (node N keeps .N)")
        podman("network", "create", "--disable-dns", "--subnet", str(subnet),
               "--gateway", str(subnet.network_address + 254), "--label", "handoff-vm", run)
        build_store(work / "store", nodes, binaries, script)
        machines = []
        for node in nodes:
            etc = work / node.name / "etc"
            node.build_etc(etc)
            container = f"{run}-{node.name}"
            podman(
                "create", "--name", container, "--hostname", node.network["hostName"],
                "--network", run, "--ip", node.network["address"], "--no-hosts",
                # A switch to another system moves the node's address.
                "--cap-add", "NET_ADMIN",
                "--systemd=always", "--label", f"handoff-vm={run}",
                "-v", f"{work / 'store'}:/nix/store:ro", image,
            )
            created.append(container)
            podman("cp", f"{etc}/.", f"{container}:/etc/")
            machines.append(QemuMachine(node.name, container, logger))
        addresses = ", ".join(f"{n.name} ({n.network['address']})" for n in nodes)
        logger.log(f"{args.test}: nodes {addresses}")
        # The script's prints and the driver's log in one stream, in order.
        # The driver's timer SIGTERMs this process; the exit it becomes
        # still removes the containers (finally, below).
        def timed_out(signum: int, frame: object) -> None:
            raise SystemExit(f"{args.test}: the global timeout of {args.global_timeout} s was reached (--global-timeout)")

        signal.signal(signal.SIGTERM, timed_out)
        with contextlib.redirect_stdout(sys.stderr):
            return Driver(machines, script, logger, args.global_timeout).run_tests()
    finally:
        for container in created:
            podman("rm", "--force", "--time", "0", container, check=False)
        podman("network", "rm", "--force", run, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
