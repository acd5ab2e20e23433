#!/usr/bin/env python3
"""A twin of the Nix build sandbox that runs the flake's cargo checks.

    tests/sandbox/run.py CHECK [--nixpkgs-lib DIR] [--keep DIR] [-- ARGS...]
    tests/sandbox/run.py --self-test [--nixpkgs-lib DIR] [--keep DIR]

CHECK is a name of nix/cargo-checks.nix (clippy, fmt, test); ARGS go to its
script as "$@". Nix cannot build here, so this runs the check's own script
the way a `nix flake check` build would run it, with what that build has
and nothing else (facts from NixOS/nix's Linux derivation builder and
nixpkgs' stdenv and Rust hooks, in our words):

- the source is exactly the check's fileset (nix/source.nix), evaluated
  with nixpkgs' lib.fileset, copied to /build/source, writable;
- dependencies are vendored (cargo vendor) and named in
  /build/.cargo/config.toml as nixpkgs' cargo setup hook does; cargo runs
  with --offline as the script says;
- no network: a new network namespace with only loopback, up;
- a new root: /build, a new /proc (the builder's pid namespace), a /dev
  of a few devices, a writable /tmp, and no /usr/bin, so no /usr/bin/env;
  /bin/sh alone in /bin; a read-only /etc of passwd, group and hosts
  (127.0.0.1 localhost) and nothing else (no resolv.conf, no CA
  certificates); /usr's libraries and headers stand for the inputs'
  store paths;
- the builder is uid 1000 (nixbld), gid 100, host name localhost;
- the environment is empty but for what Nix sets (HOME=/homeless-shelter,
  which does not exist, TMPDIR=/build, NIX_BUILD_TOP, NIX_BUILD_CORES,
  TERM, ...) and the spec's env; PATH is a farm of the declared inputs
  (Debian's builds of the same programs, mapped below) plus stdenv's, and
  of the Rust toolchain what rustPlatform gives every check (cargo, rustc)
  and what the spec's inputs name (clippy, rustfmt), nothing more;
- cargo's target directory, /build/source/target as under Nix, is kept
  between runs (see target_dir below).

--self-test proves that each of those walls stands: probes that must fail
inside (reaching the network, writing HOME, running podman or a tool not
declared, rustfmt or clippy under the test check, /usr/bin/env, reading
the checkout) and, with the test fileset
shrunk to the build fileset (a defect the flake had), the cargo test that
reads nix/ must fail. Exit status: the script's; 2 for bad usage; 69 when
the twin cannot be set up here (not root, no unshare); 1 when a self-test
wall does not stand.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# What each nixpkgs attribute a spec names puts on PATH, as Debian's
# binaries of the same programs. A name missing here is an error: the
# twin would otherwise run without what Nix gives.
INPUTS: dict[str, list[str]] = {
    "systemd": ["systemd-socket-activate", "systemctl", "systemd-run", "journalctl"],
    "openssl": ["openssl"],
    "curl": ["curl"],
    "nghttp2": ["h2load", "nghttp"],
    "systemfd": ["systemfd"],
    # The Rust toolchain's own: from its sysroot, RUST_INPUTS below.
    "clippy": [],
    "rustfmt": [],
}

# stdenv's default PATH (nixpkgs pkgs/stdenv/generic/common-path.nix) and
# its C compiler and make; Debian names the same programs.
STDENV = [
    # coreutils
    "[", "b2sum", "base32", "base64", "basename", "cat", "chgrp", "chmod", "chown", "chroot",
    "cksum", "comm", "cp", "csplit", "cut", "date", "dd", "df", "dir", "dircolors", "dirname",
    "du", "echo", "env", "expand", "expr", "factor", "false", "fmt", "fold", "groups", "head",
    "id", "install", "join", "link", "ln", "logname", "ls", "md5sum", "mkdir", "mkfifo",
    "mknod", "mktemp", "mv", "nice", "nl", "nohup", "nproc", "numfmt", "od", "paste",
    "pathchk", "pr", "printenv", "printf", "ptx", "pwd", "readlink", "realpath", "rm",
    "rmdir", "seq", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "shred",
    "shuf", "sleep", "sort", "split", "stat", "stdbuf", "stty", "sum", "sync", "tac", "tail",
    "tee", "test", "timeout", "touch", "tr", "true", "truncate", "tsort", "tty", "uname",
    "unexpand", "uniq", "unlink", "users", "vdir", "wc", "who", "whoami", "yes",
    # findutils, diffutils, gnused, gnugrep, gawk, gnutar, gzip, bzip2, xz,
    # bash, gnumake, patch, file
    "find", "xargs", "diff", "cmp", "sdiff", "diff3", "sed", "grep", "egrep", "fgrep", "awk",
    "tar", "gzip", "gunzip", "zcat", "bzip2", "bunzip2", "xz", "unxz", "bash", "make",
    "patch", "file",
    # binutils
    "ar", "as", "ld", "nm", "ranlib", "strip", "objcopy",
]

# The C compiler (stdenv's cc-wrapper) that build scripts call. gcc finds
# its own files relative to where it runs from (../lib/gcc), so it sits in
# a store-path-like /inputs/cc with Debian's gcc directory bound below.
COMPILER = ["cc", "gcc", "c++", "g++", "cpp"]

# The Rust toolchain is the sysroot of the rustc on PATH, at /toolchain:
# its binaries find their libraries relative to themselves (../lib), so
# everything but bin/ is bound whole, and /toolchain/bin has only the
# programs the check's nixpkgs packages have. Every check has rustPlatform's
# cargo and rustc (nixpkgs' rustc package has rustdoc too, which cargo test
# runs the doctests with); clippy and rustfmt are packages of their own that
# a spec names in its inputs. cargo finds its subcommands (cargo-clippy,
# cargo-fmt) on PATH and cargo-clippy its driver beside itself, so a tool
# missing from /toolchain/bin is missing for every way of calling it.
RUST_TOOLCHAIN = ["cargo", "rustc", "rustdoc"]
RUST_INPUTS: dict[str, list[str]] = {
    "clippy": ["cargo-clippy", "clippy-driver"],
    "rustfmt": ["rustfmt", "cargo-fmt"],
}

# Files a nixpkgs package has in its store path that Debian keeps in /etc:
# bound at the same place, read-only (the sandbox's /etc has nothing else).
INPUT_FILES: dict[str, list[str]] = {
    "openssl": ["/etc/ssl/openssl.cnf"],
}

# Where the programs are looked for: Debian's, and cargo's (tests/run
# installs systemfd with cargo install).
# Python packages of the checks that Debian does not build: the variable
# naming the Python of the venv tests/run installs them into from PyPI.
PYPI_VENVS = {"aioquic": "HANDOFF_H3_PYTHON"}

SEARCH = f"/usr/bin:/usr/sbin:/bin:/sbin:{Path(os.environ.get('CARGO_HOME', Path.home() / '.cargo')) / 'bin'}"

SANDBOX_UID, SANDBOX_GID = 1000, 100


class SetupError(Exception):
    """The twin cannot be built on this machine (exit 69)."""


def nix_eval(*args: str) -> Any:
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NIX_CONFIG": "build-users-group ="},
    )
    if out.returncode != 0:
        raise SetupError(f"nix-instantiate failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def specs() -> dict:
    return nix_eval(str(ROOT / "nix/cargo-checks.nix"))


def fileset(lib: Path, name: str) -> list[Path]:
    """The files of nix/source.nix's `name`, as nixpkgs' lib.fileset sees
    them (relative to the checkout)."""
    files = nix_eval(
        str(ROOT / "tests/sandbox/fileset.nix"),
        "--arg", "libPath", str(lib),
        "--arg", "sourceFile", str(ROOT / "nix/source.nix"),
        "--argstr", "name", name,
    )
    listed = {Path(f).relative_to(ROOT) for f in files}
    # A flake's source is what git tracks (and its changes): untracked or
    # ignored files in the work tree are not in it.
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if tracked.returncode == 0:
        listed &= {Path(f) for f in tracked.stdout.decode().split("\0") if f}
    return sorted(listed)


def sync_source(files: list[Path], dest: Path) -> None:
    """dest holds exactly `files` (plus target/, cargo's own), copied with
    their times so that cargo's fingerprints survive a rerun."""
    wanted = {dest / f for f in files}
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = path.relative_to(dest)
        if rel.parts[0] == "target":
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path not in wanted:
            path.unlink()
    for f in files:
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        src = ROOT / f
        if not target.exists() or target.stat().st_mtime_ns != src.stat().st_mtime_ns or target.stat().st_size != src.stat().st_size:
            shutil.copy2(src, target)
        # Nix's unpack phase makes the source writable by the builder.
        target.chmod(src.stat().st_mode | 0o200)


def vendor(build: Path) -> None:
    """/build/cargo-vendor-dir and /build/.cargo/config.toml, as nixpkgs'
    importCargoLock and cargo setup hook make them; redone only when
    Cargo.lock changes."""
    vendor_dir = build / "cargo-vendor-dir"
    lock = ROOT / "Cargo.lock"
    stamp = vendor_dir / "Cargo.lock"
    if not (stamp.exists() and stamp.read_bytes() == lock.read_bytes()):
        shutil.rmtree(vendor_dir, ignore_errors=True)
        out = subprocess.run(
            ["cargo", "vendor", "--locked", "--versioned-dirs", str(vendor_dir)],
            cwd=build / "source",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if out.returncode != 0:
            raise SetupError(f"cargo vendor failed: {out.stderr.strip()}")
        shutil.copy2(lock, stamp)
    (build / ".cargo").mkdir(exist_ok=True)
    (build / ".cargo/config.toml").write_text(
        '[source.crates-io]\nreplace-with = "vendored-sources"\n\n'
        '[source.vendored-sources]\ndirectory = "/build/cargo-vendor-dir"\n'
    )


def path_farm(farm: Path, spec: dict) -> str:
    """Copies of every program the check's build has; returns its PATH."""
    shutil.rmtree(farm, ignore_errors=True)
    bins = farm / "bin"
    bins.mkdir(parents=True)
    programs = list(STDENV)
    for name in spec["inputs"]:
        if name not in INPUTS:
            raise SetupError(f"nix/cargo-checks.nix names input {name!r}, which tests/sandbox/run.py does not map to Debian's programs")
        programs += INPUTS[name]
    declared = set(programs[len(STDENV):])
    for program in programs:
        found = shutil.which(program, path=SEARCH)
        if found is None:
            if program in declared:
                raise SetupError(f"{program} is not installed here (it is on the check's PATH under Nix)")
            continue  # a stdenv program this Debian lacks; nothing calls it
        shutil.copy2(os.path.realpath(found), bins / program)
    files = [f for name in spec["inputs"] for f in INPUT_FILES.get(name, [])]
    (farm / "etc-files").write_text("".join(f"{f}\n" for f in files))
    # nixpkgs' bash is also its sh.
    shutil.copy2(bins / "bash", bins / "sh")
    rust = list(RUST_TOOLCHAIN)
    for name in spec["inputs"]:
        rust += RUST_INPUTS.get(name, [])
    for program in rust:
        if not (sysroot() / "bin" / program).is_file():
            raise SetupError(f"{program} is not in the Rust toolchain here ({sysroot()}/bin; rustup component add?); the check has it under Nix")
    (farm / "toolchain-bin").write_text("".join(f"{p}\n" for p in rust))
    (farm / "cc/bin").mkdir(parents=True)
    (farm / "cc/lib/gcc").mkdir(parents=True)
    for program in COMPILER:
        found = shutil.which(program, path="/usr/bin")
        if found is None:
            raise SetupError(f"{program} is not installed here (stdenv has it)")
        shutil.copy2(os.path.realpath(found), farm / "cc/bin" / program)
    if spec["python"]:
        # python3.withPackages: Debian's python3 with the packages'
        # Debian builds (python3-websockets, python3-requests), and those
        # Debian does not build from the venv tests/run installs from PyPI
        # (aioquic), copied in as nixpkgs copies a package into the store.
        site = farm / "python-site"
        for module in spec["python"]:
            if subprocess.run(["/usr/bin/python3", "-c", f"import {module}"], capture_output=True).returncode == 0:
                continue
            venv_python = os.environ.get(PYPI_VENVS.get(module, ""), "")
            found = venv_python and subprocess.run(
                [venv_python, "-c", f"import sysconfig, {module}; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True, text=True,
            )
            if not found or found.returncode != 0:
                where = f" or in the venv ${PYPI_VENVS[module]} names (tests/run makes it)" if module in PYPI_VENVS else ""
                raise SetupError(f"python3 has no {module} (install python3-{module}){where}")
            shutil.copytree(found.stdout.strip(), site, dirs_exist_ok=True)
        real = os.path.realpath("/usr/bin/python3")
        shutil.copy2(real, farm / "python3.real")
        pythonpath = "PYTHONPATH=/inputs/python-site " if site.is_dir() else ""
        (bins / "python3").write_text(f'#!/bin/sh\nPYTHONHOME=/usr {pythonpath}exec /inputs/python3.real "$@"\n')
        (bins / "python3").chmod(0o755)
    return "/inputs/bin:/inputs/cc/bin:/toolchain/bin"


@functools.cache
def sysroot() -> Path:
    out = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


# Run as root inside the new namespaces: builds the root, then drops to the
# builder's user and runs the script with Nix's environment.
INSIDE = r"""
set -eu
new=$1; build=$2; farm=$3; toolchain=$4; target=$5; shift 5
mount --make-rprivate /
mount -t tmpfs -o mode=0755 none "$new"
mkdir -p "$new"/usr "$new"/build "$new"/inputs "$new"/toolchain "$new"/proc "$new"/dev "$new"/tmp "$new"/etc "$new"/bin
# /usr without /usr/bin and /usr/sbin: libraries, headers, Python's and
# gcc's files. /lib and /lib64 as Debian's merged /usr has them.
for d in lib lib64 libexec include share; do
    [ -d /usr/$d ] || continue
    mkdir -p "$new"/usr/$d
    mount --rbind -o ro /usr/$d "$new"/usr/$d
done
ln -s usr/lib "$new"/lib
[ -d /usr/lib64 ] && ln -s usr/lib64 "$new"/lib64
# sandbox-paths' default: /bin/sh and nothing else in /bin.
touch "$new"/bin/sh
mount --bind -o ro "$(readlink -f /bin/sh)" "$new"/bin/sh
mount --bind "$build" "$new"/build
# cargo's target directory, kept outside the source copy (one per fileset),
# where cargo makes it under Nix.
mkdir -p "$new"/build/source/target
mount --bind "$target" "$new"/build/source/target
mount --bind -o ro "$farm" "$new"/inputs
mount --bind -o ro /usr/lib/gcc "$new"/inputs/cc/lib/gcc
# The sysroot but bin/, and of bin/ the programs the check has.
for d in "$toolchain"/*; do
    name=${d##*/}
    [ "$name" = bin ] && continue
    if [ -d "$d" ]; then mkdir "$new"/toolchain/"$name"; else touch "$new"/toolchain/"$name"; fi
    mount --rbind -o ro "$d" "$new"/toolchain/"$name"
done
mkdir "$new"/toolchain/bin
while read -r p; do
    touch "$new"/toolchain/bin/"$p"
    mount --bind -o ro "$toolchain"/bin/"$p" "$new"/toolchain/bin/"$p"
done <"$farm"/toolchain-bin
# /dev as Nix makes it: a few devices, a new devpts, a tmpfs shm.
mount -t tmpfs -o mode=0755 none "$new"/dev
for d in full null random tty urandom zero; do
    touch "$new"/dev/$d
    mount --bind /dev/$d "$new"/dev/$d
done
mkdir "$new"/dev/shm "$new"/dev/pts
mount -t tmpfs -o mode=1777 none "$new"/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 none "$new"/dev/pts
ln -s pts/ptmx "$new"/dev/ptmx
ln -s /proc/self/fd "$new"/dev/fd
ln -s /proc/self/fd/0 "$new"/dev/stdin
ln -s /proc/self/fd/1 "$new"/dev/stdout
ln -s /proc/self/fd/2 "$new"/dev/stderr
mount -t proc proc "$new"/proc
chmod 1777 "$new"/tmp
printf 'root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:%s:%s:Nix build user:/build:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n' {uid} {gid} >"$new"/etc/passwd
printf 'root:x:0:\nnixbld:!:%s:\nnogroup:x:65534:\n' {gid} >"$new"/etc/group
printf '127.0.0.1 localhost\n::1 localhost\n' >"$new"/etc/hosts
while read -r f; do
    mkdir -p "$new$(dirname "$f")"
    touch "$new$f"
    mount --bind -o ro "$f" "$new$f"
done <"$farm"/etc-files
chmod 0555 "$new"/etc
ip link set lo up
hostname localhost
exec chroot "$new" /inputs/bin/env -i "$@"
"""


# cargo's target directory. Under Nix every check builds from nothing:
# cargo makes /build/source/target in a fresh source copy. Building the
# workspace from nothing at every run here would cost minutes each time, so
# the twin keeps the target directory between runs, and only where that
# cannot change what the build sees:
#
# - outside the source copy (KEEP/targets/FILESET), bound read-write at
#   /build/source/target, where cargo makes it under Nix: no
#   CARGO_TARGET_DIR that Nix would not set, and the paths the tests see
#   (CARGO_TARGET_TMPDIR, tests/nixos.rs's target/suite) are Nix's;
# - one for both filesets (build, test): what cargo reuses it checks
#   against the files each crate read (below), so a run on the build
#   fileset that lacks a file a crate read (include_str! of README.md, say)
#   rebuilds that crate and fails as Nix's build does; the workspace has no
#   build script that reads files undeclared. One directory saves CI a
#   whole build of the workspace (the self-test's run on the build fileset
#   reuses the test run's crates);
# - what cargo keeps there (debug/, release/) it checks against its sources
#   before use, as every incremental cargo build does: the sources' times
#   (sync_source copies them), the files each crate read (its dep-info: a
#   file gone from the fileset rebuilds, and fails, what read it), flags,
#   tracked environment and the rustc version. Given the same fileset, a
#   kept target directory builds what a fresh one would, as far as any
#   incremental cargo build does;
# - everything else there was written by an earlier run's tests or scripts
#   (target/tmp, cargo's CARGO_TARGET_TMPDIR, and target/test-reports
#   beside it), which a fresh Nix build does not have: removed before each
#   run.
#
# Removing KEEP/targets (target/sandbox/targets by default) starts from
# nothing.
CARGO_KEEPS = {"debug", "release", ".rustc_info.json", "CACHEDIR.TAG"}


def target_dir(keep: Path, source_name: str, build: Path) -> Path:
    """The kept target directory (the same for every fileset, see above),
    with only cargo's own files left in it."""
    del source_name  # one directory for every fileset
    target = keep / "targets" / "shared"
    target.mkdir(parents=True, exist_ok=True)
    for child in target.iterdir():
        if child.name not in CARGO_KEEPS:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    os.chown(target, SANDBOX_UID, SANDBOX_GID)
    # Before targets/ the twin kept one target directory in the source
    # copy, for every fileset; it is only a mount point now.
    old = build / "source/target"
    if old.is_dir() and not old.is_symlink() and any(old.iterdir()):
        shutil.rmtree(old)
    return target


def own(build: Path) -> None:
    os.chown(build, SANDBOX_UID, SANDBOX_GID)
    for child in build.iterdir():
        if child.name != "source" and child.lstat().st_uid != SANDBOX_UID:
            subprocess.run(["chown", "-R", f"{SANDBOX_UID}:{SANDBOX_GID}", str(child)], check=True)
    for top, dirs, files in os.walk(build / "source"):
        if Path(top) == build / "source" and "target" in dirs:
            dirs.remove("target")
        for name in [*dirs, *files, "."]:
            path = os.path.join(top, name)
            if os.lstat(path).st_uid != SANDBOX_UID:
                os.lchown(path, SANDBOX_UID, SANDBOX_GID)


def run_in_sandbox(build: Path, farm: Path, target: Path, env: dict[str, str], argv: list[str], capture: bool = False) -> tuple[int, str]:
    if os.geteuid() != 0:
        raise SetupError("the sandbox twin needs root (mount and network namespaces)")
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        raise SetupError("the sandbox twin needs unshare and setpriv (util-linux)")
    new = build.parent / "root"
    new.mkdir(exist_ok=True)
    # The builder owns /build, as Nix's build user does.
    # What the builder made is its own already; the rest was copied as
    # root and is handed over. Only paths not yet its own are changed, and
    # cargo's target directory (the builder's, bound at source/target; see
    # target_dir) is not walked.
    own(build)
    inside = INSIDE.replace("{uid}", str(SANDBOX_UID)).replace("{gid}", str(SANDBOX_GID))
    envs = [f"{k}={v}" for k, v in env.items()]
    # setpriv drops to the builder inside the chroot; it comes from the host
    # by path, bound read-only under /inputs.
    shutil.copy2(shutil.which("setpriv") or "", farm / "setpriv")
    drop = ["/inputs/setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    cmd = [
        "unshare", "--mount", "--net", "--pid", "--fork", "--uts", "--ipc", "--kill-child",
        "sh", "-c", inside, "inside", str(new), str(build), str(farm), str(sysroot()), str(target),
        *envs, *drop, "/inputs/bin/bash", "-c", "cd /build/source && exec \"$@\"", "cd",
        *argv,
    ]
    if not capture:
        return subprocess.run(cmd).returncode, ""
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return out.returncode, out.stdout


def nix_env(spec: dict, path: str, extra: dict[str, str]) -> dict[str, str]:
    """What Nix and stdenv give a builder, and the spec's env."""
    env = {
        "PATH": path,
        "HOME": "/homeless-shelter",
        "NIX_BUILD_TOP": "/build",
        "TMPDIR": "/build",
        "TEMPDIR": "/build",
        "TMP": "/build",
        "TEMP": "/build",
        "PWD": "/build/source",
        "NIX_STORE": "/nix/store",
        "NIX_BUILD_CORES": str(os.cpu_count() or 1),
        "TERM": "xterm-256color",
        "SOURCE_DATE_EPOCH": "315532800",
    }
    env.update(spec["env"])
    env.update(extra)
    return env


def prepare(check: str, lib: Path, keep: Path, source_name: str | None = None) -> tuple[dict, Path, Path, Path, str, int]:
    """/build for `check` (its source, vendored crates, PATH farm, target
    directory): the spec, /build, the farm, the target directory, PATH,
    and how many files the source has."""
    all_specs = specs()
    if check not in all_specs:
        raise SetupError(f"no check {check!r} in nix/cargo-checks.nix (there are {', '.join(sorted(all_specs))})")
    spec = all_specs[check]
    build = keep / "build"
    source_name = source_name or spec["source"]
    files = fileset(lib, source_name)
    sync_source(files, build / "source")
    vendor(build)
    target = target_dir(keep, source_name, build)
    farm = keep / "inputs"
    path = path_farm(farm, spec)
    return spec, build, farm, target, path, len(files)


def script_argv(spec: dict, check: str, args: list[str]) -> list[str]:
    """The check's script as its build phase runs it, with `args` as "$@"."""
    return ["/inputs/bin/bash", "-c", "set -euo pipefail\n" + spec["script"], check, *args]


def run_check(check: str, lib: Path, keep: Path, args: list[str], extra_env: dict[str, str]) -> int:
    spec, build, farm, target, path, files = prepare(check, lib, keep)
    tools = " ".join((farm / "toolchain-bin").read_text().split())
    print(f"sandbox: {check}: {files} files of the {spec['source']} fileset in /build/source, target directory {target}, PATH={path} (/toolchain/bin: {tools})", file=sys.stderr, flush=True)
    return run_in_sandbox(build, farm, target, nix_env(spec, path, extra_env), script_argv(spec, check, args))[0]


# What Nix's sandbox does not allow: each probe must fail inside the twin.
PROBES = [
    ("an interface besides loopback", "tail -n +3 /proc/net/dev | grep -v ' lo:' | grep -q ."),
    # Up, loopback refuses a closed port; down, it is unreachable.
    ("loopback down", "out=$( (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 ); case $out in *refused*) exit 1;; esac"),
    ("a resolver configured", "test -e /etc/resolv.conf"),
    ("writing HOME", "mkdir -p $HOME/.cache"),
    ("running podman", "command -v podman"),
    ("a tool the check does not declare", "command -v haproxy || command -v nix-instantiate || command -v go"),
    # The test check's inputs have no clippy and no rustfmt: neither on
    # PATH nor through cargo.
    ("rustfmt or clippy under the test check", "command -v rustfmt || command -v cargo-fmt || command -v cargo-clippy || command -v clippy-driver || cargo fmt --version || cargo clippy --version"),
    ("/usr/bin/env", "test -e /usr/bin/env"),
    ("reading the checkout", f"test -e {ROOT}/Cargo.toml"),
    ("a file outside the fileset", "test -e /build/source/.gitignore"),
    ("running as root", "(( EUID == 0 ))"),
]


def self_test(lib: Path, keep: Path) -> int:
    broken = []
    # The defect the flake had: checks.cargo-test on the package's build
    # fileset, without nix/. The test that lists nix/tests must fail, for
    # that reason; on the test fileset the same command passes. The test
    # fileset stays for the probes and the next run.
    one = ["--test", "nixos", "--", "--exact", "every_vm_test_runs_here_or_says_why_not"]
    for source_name, should_pass in [("build", False), ("test", True)]:
        spec, build, farm, target, path, _ = prepare("test", lib, keep, source_name=source_name)
        env = nix_env(spec, path, {})
        status, out = run_in_sandbox(build, farm, target, env, script_argv(spec, "test", one), capture=True)
        ok = (status == 0) if should_pass else (status != 0 and "No such file or directory" in out and "every_vm_test_runs_here_or_says_why_not" in out)
        what = f"the cargo test that reads nix/tests {'passes' if should_pass else 'fails'} on the {source_name} fileset"
        print(f"self-test: {what}: {'yes' if ok else 'NO'}", flush=True)
        if not ok:
            print(out[-3000:], file=sys.stderr)
            broken.append(what)
    for name, probe in PROBES:
        status, _ = run_in_sandbox(build, farm, target, env, ["/inputs/bin/bash", "-c", probe], capture=True)
        print(f"self-test: {name}: {'no' if status != 0 else 'YES, a wall is down'}", flush=True)
        if status == 0:
            broken.append(name)
    if broken:
        print(f"self-test: walls that do not stand: {', '.join(broken)}", file=sys.stderr)
        return 1
    print(f"self-test: all {len(PROBES) + 2} walls stand")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", nargs="?")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--nixpkgs-lib", type=Path, help="nixpkgs' lib/ (default: the nixpkgs subset's, unpacked)")
    parser.add_argument("--keep", type=Path, default=ROOT / "target/sandbox", help="where the twin keeps /build between runs")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="more environment for the check (tests/run's skip file)")
    # What follows "--" goes to the check's script, untouched.
    argv = sys.argv[1:]
    script_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    opts = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not opts.self_test and not opts.check:
        parser.error("name a check of nix/cargo-checks.nix, or --self-test")
    try:
        lib = opts.nixpkgs_lib or unpacked_lib(opts.keep)
        opts.keep.mkdir(parents=True, exist_ok=True)
        if opts.self_test:
            return self_test(lib, opts.keep.resolve())
        extra = dict(e.split("=", 1) for e in opts.env)
        return run_check(opts.check, lib, opts.keep.resolve(), script_args, extra)
    except SetupError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 69


def unpacked_lib(keep: Path) -> Path:
    """nixpkgs' lib from the nixpkgs-eval archive (as tests/nixpkgs/ finds it)."""
    for archive in [
        os.environ.get("HANDOFF_NIXPKGS_SUBSET", ""),
        str(ROOT / "../shared/nixpkgs-eval/nixpkgs-subset.tar.gz"),
        "/work/shared/nixpkgs-eval/nixpkgs-subset.tar.gz",
    ]:
        if archive and Path(archive).is_file():
            dest = keep / "nixpkgs-subset"
            if not (dest / "nixpkgs/lib").is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                subprocess.run(["tar", "-xzf", archive, "-C", str(dest)], check=True)
            return dest / "nixpkgs/lib"
    raise SetupError("no nixpkgs lib: pass --nixpkgs-lib or set HANDOFF_NIXPKGS_SUBSET")


if __name__ == "__main__":
    sys.exit(main())
