"""The NixOS test driver's API over systemd containers in podman.

Two jobs, one source of truth:

- **At run time** it runs a VM test's script: a command runs as
  `timeout T bash -c 'set -euo pipefail; COMMAND'` as root on the machine,
  its stdout is returned and its stderr goes to the log; `succeed` raises
  RequestedAssertionFailed on a non-zero status and returns the stdout of
  all its commands; the `wait_until_*` methods retry once a second until
  their timeout and raise then; `wait_for_unit` raises as soon as the unit
  failed, or is inactive with no job pending; the machine boots on first
  use; the script runs with `exec`, its failures reported by the script's
  own frames and exit status 1. What differs from a VM is only what a
  machine is: a container with systemd as PID 1 (the real driver has an
  equivalent of its own, NspawnMachine).
- **At check time** it is what a script is type-checked against
  (tests/nixos/script_checks.py), as nixpkgs' driver derivation checks a
  script against the real driver before any VM boots. So the classes carry
  the real driver's names (BaseMachine, QemuMachine, NspawnMachine, Driver,
  VLan) and every public method has the real one's name, parameters,
  defaults and return type, written from nixpkgs'
  nixos/lib/test-driver/src/test_driver (machine/__init__.py, driver.py,
  errors.py, logger.py; read at commits 019697db058b and 00db7852dd6d, the
  int-seconds API of NixOS 25.11). A script that calls `machine.sleep(0.5)`
  fails here as it fails there (`sleep(self, secs: int)`). Methods the
  real driver has and a container cannot do (screens, keyboards, QEMU's
  monitor) keep their signatures and raise NotImplementedError.
"""

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
import unittest
from pathlib import Path
from typing import Any, Callable, Generator, Iterator


class MachineError(Exception):
    """The machine could not do what was asked: not the test's fault (as
    the real driver's errors.MachineError); reported with its traceback."""


class RequestedAssertionFailed(AssertionError):
    """A requested assertion failed (`succeed`, `fail`, a timeout, `t.assert*`):
    reported with the script's own frames only, as the real driver's."""


class AbstractLogger:
    """The driver's log: lines on stderr, indented by nesting."""

    def __init__(self) -> None:
        self.depth = 0

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        machine = attributes.get("machine")
        prefix = f"{machine}: " if machine else ""
        for line in str(message).splitlines() or [""]:
            print(f"{'  ' * self.depth}{prefix}{line}", file=sys.stderr, flush=True)

    def info(self, *args: Any, **kwargs: Any) -> None:
        self.log(*args, **kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        self.log(*args, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        self.log(f"!!! {args[0] if args else ''}")

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        self.log(f"!!! {args[0] if args else ''}")

    def log_serial(self, message: str, machine: str) -> None:
        self.log(message, {"machine": machine})

    def print_serial_logs(self, enable: bool) -> None:
        pass

    @contextlib.contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        self.log(message, attributes)
        self.depth += 1
        start = time.monotonic()
        try:
            yield
        finally:
            self.depth -= 1
            self.log(f"({message}: took {time.monotonic() - start:.2f} seconds)", attributes)


class Logger(AbstractLogger):
    """The console log this harness writes."""


class CompositeLogger(AbstractLogger):
    """The real driver's fan-out logger; here it logs once to the console."""

    def __init__(self, logger_list: list[AbstractLogger]) -> None:
        super().__init__()
        self.logger_list = logger_list


class DebugAbstract:
    """The real driver's debug hook (--debug-hook-attach)."""

    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        raise NotImplementedError("handoff's harness has no debug hook")


class DebugNop(DebugAbstract):
    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        pass


class VLan:
    """A virtual network: all nodes share one podman network here."""

    def __init__(self, nr: int, tmp_dir: Path) -> None:
        self.nr = nr
        self.tmp_dir = tmp_dir

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def retry(fn: Callable, timeout_seconds: int = 900) -> None:
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


def not_here(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what}: a QEMU VM's, which handoff's container harness has not")


class BaseMachine:
    """What every kind of machine does, over `_execute`."""

    name: str
    callbacks: list[Callable]

    def __init__(self, name: str, logger: AbstractLogger) -> None:
        self.name = name
        self.logger = logger
        self.callbacks = []

    def __repr__(self) -> str:
        return f"<Machine '{self.name}'>"

    def log(self, msg: str) -> None:
        self.logger.log(msg, {"machine": self.name})

    def log_serial(self, msg: str) -> None:
        self.logger.log_serial(msg, self.name)

    def nested(self, msg: str, attrs: dict[str, str] = {}) -> contextlib._GeneratorContextManager:
        return self.logger.nested(msg, {"machine": self.name, **attrs})

    def is_up(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait_for_shutdown(self) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    def _execute(
        self, command: str, check_return: bool = True, check_output: bool = True, timeout: int | None = 900
    ) -> tuple[int, str]:
        raise NotImplementedError

    # -- commands ----------------------------------------------------------

    def run_callbacks(self) -> None:
        for callback in self.callbacks:
            callback()

    def execute(
        self, command: str, check_return: bool = True, check_output: bool = True, timeout: int | None = 900
    ) -> tuple[int, str]:
        """Runs `command` with bash (`set -euo pipefail`) as root: (status,
        stdout). A command that detaches must close its stdout. With
        check_output=False it is not waited for: (-2, ""); with
        check_return=False the status is not read: (-1, stdout)."""
        self.run_callbacks()
        return self._execute(command, check_return, check_output, timeout)

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

    def sleep(self, secs: int) -> None:
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

    def wait_for_open_unix_socket(self, addr: str, is_datagram: bool = False, timeout: int = 900) -> None:
        nc_flags = ["-z", "-uU" if is_datagram else "-U"]

        def socket_is_open(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc {' '.join(nc_flags)} {addr}")
            return status == 0

        with self.nested(f"waiting for UNIX socket {addr}"):
            retry(socket_is_open, timeout)

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

    def cleanup_statedir(self) -> None:
        raise not_here("cleanup_statedir")

    def copy_from_machine(self, source: str, target_dir: str = "") -> None:
        raise not_here("copy_from_machine (the shared directory)")

    def copy_from_vm(self, source: str, target_dir: str = "") -> None:
        self.copy_from_machine(source, target_dir)

    def copy_from_host_via_shell(self, source: str, target: str) -> None:
        self.copy_from_host(source, target)

    def copy_from_host(self, source: str, target: str) -> None:
        raise NotImplementedError


class QemuMachine(BaseMachine):
    """A node. The scripts' nodes are QEMU VMs to the real driver (its
    type hints say `NAME: QemuMachine`), so this class carries that name
    and that API; here it is a systemd container, created (not started) by
    the harness. `container` names it for podman; `podman` is the command
    prefix."""

    def __init__(self, name: str, container: str, logger: AbstractLogger, podman: list[str] | None = None):
        super().__init__(name, logger)
        self.container = container
        self.podman = podman or ["podman"]
        self.booted = False
        self.connected = False
        # Commands not waited for (execute with check_output=False).
        self.detached: list[subprocess.Popen] = []

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.podman, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and done.returncode != 0:
            raise MachineError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    # -- lifecycle ---------------------------------------------------------

    def is_up(self) -> bool:
        return self.booted and self.connected

    def start(self, allow_reboot: bool = False) -> None:
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
                done = self._podman("exec", self.container, "systemctl", "is-system-running", "--wait", check=False)
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

    def reboot(self) -> None:
        self.shutdown()
        self.start()

    def release(self) -> None:
        for proc in self.detached:
            proc.kill()

    # -- commands ----------------------------------------------------------

    def _execute(
        self, command: str, check_return: bool = True, check_output: bool = True, timeout: int | None = 900
    ) -> tuple[int, str]:
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

    def wait_for_file(self, filename: str, timeout: int = 900) -> None:
        super().wait_for_file(filename, timeout)

    def copy_from_host(self, source: str, target: str) -> None:
        """Copies a file or directory from the host to `target` on the
        machine, owned by root."""
        self.succeed(make_command(["mkdir", "-p", os.path.dirname(target) or "/"]))
        self._podman("cp", source, f"{self.container}:{target}")
        self.succeed(make_command(["chown", "-R", "root:root", target]))

    # -- what only a QEMU VM has ---------------------------------------------

    def ssh_backdoor_command(self) -> str:
        raise not_here("ssh_backdoor_command")

    def wait_for_monitor_prompt(self) -> str:
        raise not_here("wait_for_monitor_prompt")

    def send_monitor_command(self, command: str) -> str:
        raise not_here("send_monitor_command")

    def get_tty_text(self, tty: str) -> str:
        raise not_here("get_tty_text")

    def wait_until_tty_matches(self, tty: str, regexp: str, timeout: int = 900) -> None:
        raise not_here("wait_until_tty_matches")

    def dump_tty_contents(self, tty: str) -> None:
        raise not_here("dump_tty_contents")

    def shell_interact(self, address: str | None = None) -> None:
        raise not_here("shell_interact")

    def console_interact(self) -> None:
        raise not_here("console_interact")

    def wait_for_qmp_event(self, event_filter: Callable[[dict[str, Any]], bool], timeout: int = 60 * 10) -> dict[str, Any]:
        raise not_here("wait_for_qmp_event")

    def send_chars(self, chars: str, delay: float | None = 0.01) -> None:
        raise not_here("send_chars")

    def screenshot(self, filename: str) -> None:
        raise not_here("screenshot")

    def get_screen_text_variants(self) -> list[str]:
        raise not_here("get_screen_text_variants")

    def get_screen_text(self) -> str:
        raise not_here("get_screen_text")

    def wait_for_text(self, regex: str, timeout: int = 900) -> None:
        raise not_here("wait_for_text")

    def wait_for_console_text(self, regex: str, timeout: int | None = None) -> None:
        raise not_here("wait_for_console_text")

    def get_console_log(self) -> str:
        raise not_here("get_console_log")

    def send_key(self, key: str, delay: float | None = 0.01, log: bool | None = True) -> None:
        raise not_here("send_key")

    def send_console(self, chars: str) -> None:
        raise not_here("send_console")

    def wait_for_x(self, timeout: int = 900) -> None:
        raise not_here("wait_for_x")

    def get_window_names(self) -> list[str]:
        raise not_here("get_window_names")

    def wait_for_window(self, regexp: str, timeout: int = 900) -> None:
        raise not_here("wait_for_window")

    def forward_port(self, host_port: int = 8080, guest_port: int = 80) -> None:
        raise not_here("forward_port")

    def block(self) -> None:
        raise not_here("block")

    def unblock(self) -> None:
        raise not_here("unblock")

    def switch_root(self) -> None:
        raise not_here("switch_root")


class NspawnMachine(BaseMachine):
    """The real driver's container machine, for the type hints of tests
    that declare `containers.*`; none of nix/tests/ does."""

    def ssh_backdoor_command(self) -> str:
        raise not_here("ssh_backdoor_command")

    def release(self) -> None:
        pass


def pythonize_name(name: str) -> str:
    return re.sub(r"^[^A-Za-z_]|[^A-Za-z0-9_]", "_", name)


class AssertionTester(unittest.TestCase):
    """`t` in test scripts: unittest's assertions, failing as requested assertions."""

    failureException = RequestedAssertionFailed


class Driver:
    """Runs a test script against machines, as the real driver's Driver."""

    def __init__(self, machines: list[QemuMachine], script: str, logger: AbstractLogger, global_timeout: int = 24 * 60 * 60 * 7):
        self.machines = sorted(machines, key=lambda m: m.name)
        self.tests = script
        self.logger = logger
        # As the real driver: a timer that ends the run however the script
        # hangs (its command line's --global-timeout defaults to an hour).
        self.global_timeout = global_timeout
        self.race_timer = threading.Timer(global_timeout, self.terminate_test)
        self.race_timer.daemon = True
        self.vlans: list[VLan] = []
        self.debug: DebugAbstract = DebugNop()

    @property
    def machines_qemu(self) -> list[QemuMachine]:
        return self.machines

    @property
    def machines_nspawn(self) -> list[NspawnMachine]:
        return []

    def start_all(self) -> None:
        with self.logger.nested("start all VMs"):
            for machine in self.machines:
                machine.start()

    def join_all(self) -> None:
        with self.logger.nested("wait for all VMs to finish"):
            for machine in self.machines:
                machine.wait_for_shutdown()

    @contextlib.contextmanager
    def subtest(self, name: str) -> Generator[None, None, None]:
        with self.logger.nested(f"subtest: {name}"):
            try:
                yield
            except Exception as e:
                self.logger.log_test_error(f'Test "{name}" failed with error: "{e}"')
                raise

    def serial_stdout_on(self) -> None:
        pass

    def serial_stdout_off(self) -> None:
        pass

    def create_machine(self, start_command: str, *, name: str | None = None, keep_machine_state: bool = False) -> QemuMachine:
        raise not_here("create_machine")

    def polling_condition(self, fun_: Callable | None = None, *, seconds_interval: float = 2.0, description: str | None = None) -> Any:
        raise NotImplementedError("polling_condition: no script of nix/tests/ uses it; handoff's harness has none")

    def dump_machine_ssh(self) -> None:
        raise not_here("dump_machine_ssh")

    def test_symbols(self) -> dict[str, Any]:
        """The names a script sees, as the real driver's test_symbols()."""
        symbols: dict[str, Any] = dict(
            start_all=self.start_all,
            test_script=self.test_script,
            machines=self.machines,
            machines_qemu=self.machines_qemu,
            machines_nspawn=self.machines_nspawn,
            vlans=self.vlans,
            driver=self,
            log=self.logger,
            os=os,
            create_machine=self.create_machine,
            subtest=self.subtest,
            run_tests=self.run_tests,
            join_all=self.join_all,
            retry=retry,
            serial_stdout_off=self.serial_stdout_off,
            serial_stdout_on=self.serial_stdout_on,
            polling_condition=self.polling_condition,
            BaseMachine=BaseMachine,
            QemuMachine=QemuMachine,
            NspawnMachine=NspawnMachine,
            t=AssertionTester(),
            debug=self.debug,
            dump_machine_ssh=self.dump_machine_ssh,
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
            except RequestedAssertionFailed:
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

    def terminate_test(self) -> None:
        # Runs on the timer's thread: the real driver logs, releases the
        # machines and SIGTERMs its own process, so that a script that
        # swallows exceptions cannot keep running. run.py turns the SIGTERM
        # into an exit that removes the containers.
        with self.logger.nested("timeout reached; test terminating..."):
            os.kill(os.getpid(), signal.SIGTERM)

    def run_tests(self) -> int:
        self.logger.info(f"Test will time out and terminate in {self.global_timeout} seconds")
        self.race_timer.start()
        status = self.test_script()
        self.race_timer.cancel()
        if status == 0:
            for machine in self.machines:
                if machine.is_up():
                    machine.execute("sync")
        return status
