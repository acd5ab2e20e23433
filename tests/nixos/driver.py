"""The NixOS test driver's machine API, the subset nix/tests/ uses, over
systemd containers in podman.

Semantics follow nixpkgs' nixos/lib/test-driver (src/test_driver/driver.py,
machine/__init__.py, errors.py): a command runs as
`timeout T bash -c 'set -euo pipefail; COMMAND'` as root on the machine, its
stdout is returned and its stderr goes to the log; `succeed` raises
RequestedAssertionFailed on a non-zero status and returns the stdout of all
its commands; the `wait_until_*` methods retry once a second until their
timeout and raise then; `wait_for_unit` raises as soon as the unit failed,
or is inactive with no job pending; the machine boots on first use; and the
test script runs with `exec`, its failures reported by the script's own
frames and exit status 1. What differs is only what a machine is: a
container with systemd as PID 1 instead of a QEMU VM (the real driver has
grown an equivalent, NspawnMachine).
"""

import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
import unittest
from typing import Callable, Iterator


class TestScriptError(Exception):
    """A failure of the test script: only its own frames are reported."""


class RequestedAssertionFailed(TestScriptError):
    """A requested assertion failed: `succeed`, `fail`, a timeout, `t.assert*`."""


class MachineError(Exception):
    """The machine itself could not do what was asked (not a test failure)."""


class Logger:
    """Lines on stderr, indented by nesting, as the real driver's console log."""

    def __init__(self) -> None:
        self.depth = 0

    def log(self, msg: str, machine: str | None = None) -> None:
        prefix = f"{machine}: " if machine else ""
        for line in str(msg).splitlines() or [""]:
            print(f"{'  ' * self.depth}{prefix}{line}", file=sys.stderr, flush=True)

    def info(self, msg: str) -> None:
        self.log(msg)

    def error(self, msg: str) -> None:
        self.log(f"!!! {msg}")

    def log_test_error(self, msg: str) -> None:
        self.log(f"!!! {msg}")

    @contextlib.contextmanager
    def nested(self, msg: str, machine: str | None = None) -> Iterator[None]:
        self.log(msg, machine)
        self.depth += 1
        start = time.monotonic()
        try:
            yield
        finally:
            self.depth -= 1
            self.log(f"({msg}: took {time.monotonic() - start:.2f} seconds)", machine)


def retry(fn: Callable[[bool], bool], timeout_seconds: int = 900) -> None:
    """Calls `fn(False)` once a second until it returns True or the timeout
    passes, then `fn(True)` a last time; raises if that fails too."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_seconds:
        if fn(False):
            return
        time.sleep(1)
    elapsed = time.monotonic() - start
    if not fn(True):
        raise RequestedAssertionFailed(
            f"action timed out after {elapsed:.2f} seconds (timeout={timeout_seconds})"
        )


def make_command(args: list) -> str:
    return " ".join(map(shlex.quote, map(str, args)))


class Machine:
    """One node: a systemd container, created (not started) by the harness.

    `container` names it for podman; `podman` is the command prefix (with
    CONTAINERS_CONF in its environment)."""

    def __init__(self, name: str, container: str, logger: Logger, podman: list[str] | None = None):
        self.name = name
        self.container = container
        self.logger = logger
        self.podman = podman or ["podman"]
        self.booted = False
        self.connected = False
        # Commands not waited for (execute with check_output=False).
        self.detached: list[subprocess.Popen] = []

    def __repr__(self) -> str:
        return f"<Machine '{self.name}'>"

    def log(self, msg: str) -> None:
        self.logger.log(msg, self.name)

    def nested(self, msg: str) -> contextlib.AbstractContextManager:
        return self.logger.nested(msg, self.name)

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*self.podman, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if check and done.returncode != 0:
            raise MachineError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    # -- lifecycle ---------------------------------------------------------

    def is_up(self) -> bool:
        return self.booted and self.connected

    def start(self) -> None:
        """Boots the machine; does not wait for the boot to finish."""
        if self.booted:
            return
        self.log("starting container")
        self._podman("start", self.container)
        self.booted = True

    def connect(self) -> None:
        """Boots the machine if needed and waits until systemd has finished
        booting it (the real driver waits for its backdoor shell, a service
        of multi-user.target)."""
        if self.connected:
            return
        with self.nested("waiting for the machine to finish booting"):
            self.start()
            deadline = time.monotonic() + 300
            while True:
                done = self._podman(
                    "exec", self.container, "systemctl", "is-system-running", "--wait", check=False
                )
                state = done.stdout.strip()
                if state in ("running", "degraded"):
                    break
                if time.monotonic() > deadline:
                    raise MachineError(f"{self.name} did not finish booting: {state} {done.stderr.strip()}")
                time.sleep(0.5)
            self.connected = True

    def wait_for_shutdown(self) -> None:
        if not self.booted:
            return
        with self.nested("waiting for the machine to power off"):
            self._podman("wait", self.container, check=False)
            self.booted = False
            self.connected = False

    def shutdown(self) -> None:
        """Shuts the machine down (systemd's poweroff) and waits for it."""
        if not self.booted:
            return
        self._podman("stop", "--time", "90", self.container)
        self.wait_for_shutdown()

    def crash(self) -> None:
        """A sudden power failure."""
        if not self.booted:
            return
        self.log("forced crash")
        self._podman("kill", "--signal", "KILL", self.container, check=False)
        self.wait_for_shutdown()

    # -- commands ----------------------------------------------------------

    def execute(
        self,
        command: str,
        check_return: bool = True,
        check_output: bool = True,
        timeout: int | None = 900,
    ) -> tuple[int, str]:
        """Runs `command` with bash (`set -euo pipefail`) as root: (status,
        stdout). A command that detaches must close its stdout. With
        check_output=False it is not waited for: (-2, ""); with
        check_return=False the status is not read: (-1, stdout)."""
        self.connect()
        wrapped = ["timeout", str(timeout)] if timeout is not None else []
        argv = [*self.podman, "exec", self.container, *wrapped, "bash", "-c", f"set -euo pipefail; {command}"]
        if not check_output:
            self.detached.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
            return (-2, "")
        done = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        out = done.stdout.decode(errors="replace")
        if not check_return:
            return (-1, out)
        return (done.returncode, out)

    def succeed(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            with self.nested(f"must succeed: {command}"):
                status, out = self.execute(command, timeout=timeout)
                if status != 0:
                    self.log(f"output: {out}")
                    raise RequestedAssertionFailed(f"command `{command}` failed (exit code {status})")
                output += out
        return output

    def fail(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            with self.nested(f"must fail: {command}"):
                status, out = self.execute(command, timeout=timeout)
                if status == 0:
                    raise RequestedAssertionFailed(f"command `{command}` unexpectedly succeeded")
                output += out
        return output

    def wait_until_succeeds(self, command: str, timeout: int = 900) -> str:
        output = ""

        def check_success(_last_try: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status == 0

        with self.nested(f"waiting for success: {command}"):
            retry(check_success, timeout)
            return output

    def wait_until_fails(self, command: str, timeout: int = 900) -> str:
        output = ""

        def check_failure(_last_try: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status != 0

        with self.nested(f"waiting for failure: {command}"):
            retry(check_failure, timeout)
            return output

    def sleep(self, secs: float) -> None:
        # In the machine's time, as the real driver does.
        self.succeed(f"sleep {secs}")

    def wait_for_file(self, filename: str, timeout: int = 900) -> None:
        def check_file(_last_try: bool) -> bool:
            status, _ = self.execute(f"test -e {filename}")
            return status == 0

        with self.nested(f"waiting for file '{filename}'"):
            retry(check_file, timeout)

    def wait_for_open_port(self, port: int, addr: str = "localhost", timeout: int = 900) -> None:
        def port_is_open(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc -z {addr} {port}")
            return status == 0

        with self.nested(f"waiting for TCP port {port} on {addr}"):
            retry(port_is_open, timeout)

    def wait_for_closed_port(self, port: int, addr: str = "localhost", timeout: int = 900) -> None:
        def port_is_closed(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc -z {addr} {port}")
            return status != 0

        with self.nested(f"waiting for TCP port {port} on {addr} to be closed"):
            retry(port_is_closed, timeout)

    # -- systemd -----------------------------------------------------------

    def systemctl(self, q: str, user: str | None = None) -> tuple[int, str]:
        if user is not None:
            q = q.replace("'", "\\'")
            return self.execute(
                f"su -l {user} --shell /bin/sh -c "
                "$'XDG_RUNTIME_DIR=/run/user/`id -u` "
                f"systemctl --user {q}'"
            )
        return self.execute(f"systemctl {q}")

    def start_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"start {jobname}", user)

    def stop_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"stop {jobname}", user)

    def get_unit_info(self, unit: str, user: str | None = None) -> dict[str, str]:
        status, lines = self.systemctl(f'--no-pager show "{unit}"', user)
        if status != 0:
            raise RequestedAssertionFailed(
                f'retrieving systemctl info for unit "{unit}"'
                + ("" if user is None else f' under user "{user}"')
                + f" failed with exit code {status}"
            )
        pattern = re.compile(r"^([^=]+)=(.*)$")
        return {m[1]: m[2] for m in map(pattern.match, lines.split("\n")) if m}

    def get_unit_property(self, unit: str, property: str, user: str | None = None) -> str:
        status, lines = self.systemctl(f'--no-pager show "{unit}" --property="{property}"', user)
        if status != 0:
            raise RequestedAssertionFailed(
                f'retrieving systemctl property "{property}" for unit "{unit}"'
                + ("" if user is None else f' under user "{user}"')
                + f" failed with exit code {status}"
            )
        invalid = f'systemctl show --property "{property}" "{unit}" produced invalid output: {lines}'
        match = re.match(r"^([^=]+)=(.*)$", lines)
        assert match is not None, invalid
        assert match[1] == property, invalid
        return match[2]

    def require_unit_state(self, unit: str, require_state: str = "active") -> None:
        with self.nested(f"checking if unit '{unit}' has reached state '{require_state}'"):
            state = self.get_unit_info(unit)["ActiveState"]
            if state != require_state:
                raise RequestedAssertionFailed(
                    f"Expected unit '{unit}' to to be in state '{require_state}' but it is in state '{state}'"
                )

    def wait_for_unit(self, unit: str, user: str | None = None, timeout: int = 900) -> None:
        def check_active(_last_try: bool) -> bool:
            state = self.get_unit_property(unit, "ActiveState", user)
            if state == "failed":
                raise RequestedAssertionFailed(f'unit "{unit}" reached state "{state}"')
            if state == "inactive":
                _, jobs = self.systemctl("list-jobs --full 2>&1", user)
                if "No jobs" in jobs:
                    info = self.get_unit_info(unit, user)
                    if info["ActiveState"] == state:
                        raise RequestedAssertionFailed(f'unit "{unit}" is inactive and there are no pending jobs')
            return state == "active"

        with self.nested(f"waiting for unit {unit}" + (f" with user {user}" if user is not None else "")):
            retry(check_active, timeout)

    # -- files -------------------------------------------------------------

    def copy_from_host(self, source: str, target: str) -> None:
        """Copies a file or directory from the host to `target` on the
        machine, owned by root."""
        self.succeed(make_command(["mkdir", "-p", os.path.dirname(target) or "/"]))
        self._podman("cp", source, f"{self.container}:{target}")
        self.succeed(make_command(["chown", "-R", "root:root", target]))


def pythonize_name(name: str) -> str:
    return re.sub(r"^[^A-Za-z_]|[^A-Za-z0-9_]", "_", name)


class AssertionTester(unittest.TestCase):
    """`t` in test scripts: unittest's assertions, failing as requested assertions."""

    failureException = RequestedAssertionFailed


class Driver:
    """Runs a test script against machines, as the real driver's Driver."""

    def __init__(self, machines: list[Machine], script: str, logger: Logger):
        self.machines = sorted(machines, key=lambda m: m.name)
        self.tests = script
        self.logger = logger

    def start_all(self) -> None:
        with self.logger.nested("start all VMs"):
            for machine in self.machines:
                machine.start()

    def join_all(self) -> None:
        with self.logger.nested("wait for all VMs to finish"):
            for machine in self.machines:
                machine.wait_for_shutdown()

    @contextlib.contextmanager
    def subtest(self, name: str) -> Iterator[None]:
        with self.logger.nested(f"subtest: {name}"):
            try:
                yield
            except Exception as e:
                self.logger.log_test_error(f'Test "{name}" failed with error: "{e}"')
                raise

    def test_symbols(self) -> dict:
        symbols = dict(
            start_all=self.start_all,
            join_all=self.join_all,
            subtest=self.subtest,
            retry=retry,
            driver=self,
            log=self.logger,
            os=os,
            t=AssertionTester(),
        )
        machines = {pythonize_name(m.name): m for m in self.machines}
        if len(self.machines) == 1:
            (machines["machine"],) = self.machines
        return {**symbols, **machines}

    def test_script(self) -> int:
        """Runs the script: 0 when it ran to the end, 1 when it failed."""
        with self.logger.nested("run the VM test script"):
            symbols = self.test_symbols()
            try:
                exec(self.tests, symbols, None)
            except MachineError:
                for line in traceback.format_exc().splitlines():
                    self.logger.log_test_error(line)
                return 1
            except TestScriptError:
                exc_type, exc, tb = sys.exc_info()
                frames = [f for f in traceback.extract_tb(tb) if f.filename == "<string>"]
                self.logger.log_test_error("Traceback (most recent call last):")
                code = self.tests.splitlines()
                for frame, line in zip(frames, traceback.format_list(frames)):
                    self.logger.log_test_error(line.rstrip())
                    if frame.lineno:
                        self.logger.log_test_error(f"    {code[frame.lineno - 1].strip()}")
                self.logger.log_test_error("")
                for line in f"{exc_type.__name__ if exc_type else 'Error'}: {exc}".splitlines():
                    self.logger.log_test_error(line)
                return 1
            except Exception:
                # As the real driver: any other exception (a failed `assert`)
                # propagates with its whole traceback; the driver exits 1.
                traceback.print_exc()
                return 1
        return 0

    def run_tests(self) -> int:
        status = self.test_script()
        if status == 0:
            for machine in self.machines:
                if machine.is_up():
                    machine.execute("sync")
        return status
