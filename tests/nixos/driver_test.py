"""The driver's semantics, checked against what nixpkgs' test driver does
(nixos/lib/test-driver/src/test_driver: machine/__init__.py, driver.py),
on a real machine: one systemd container of the nodes' image.

  python3 tests/nixos/driver_test.py IMAGE      (CONTAINERS_CONF as for the suite)
"""

import io
import contextlib
import os
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import Driver, Logger, QemuMachine, RequestedAssertionFailed, retry  # noqa: E402

IMAGE = ""


def create(container: str) -> QemuMachine:
    """A machine on a new container of IMAGE, not started."""
    subprocess.run(
        ["podman", "create", "--name", container, "--systemd=always", "--network=none", IMAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return QemuMachine("machine", container, Logger())


def remove(container: str) -> None:
    subprocess.run(["podman", "rm", "--force", "--time", "0", container], stdout=subprocess.DEVNULL)


class OnAMachine(unittest.TestCase):
    machine: QemuMachine
    container = f"handoff-driver-test-{os.getpid()}"

    @classmethod
    def setUpClass(cls) -> None:
        cls.machine = create(cls.container)

    @classmethod
    def tearDownClass(cls) -> None:
        remove(cls.container)

    def test_a_machine_boots_on_first_use(self) -> None:
        self.assertEqual(self.machine.succeed("echo up"), "up\n")
        self.assertTrue(self.machine.is_up())
        self.assertIn(self.machine.succeed("systemctl is-system-running || true").strip(), ("running", "degraded"))

    def test_succeed_returns_stdout_of_every_command_and_not_stderr(self) -> None:
        self.assertEqual(self.machine.succeed("echo a; echo b >&2", "echo c"), "a\nc\n")

    def test_succeed_raises_on_a_non_zero_status(self) -> None:
        with self.assertRaisesRegex(RequestedAssertionFailed, r"command `exit 3` failed \(exit code 3\)"):
            self.machine.succeed("exit 3")

    def test_commands_run_with_set_euo_pipefail(self) -> None:
        # The first failing command ends the command; a failing stage fails a pipeline; unset variables fail.
        self.assertEqual(self.machine.execute("false; echo after"), (1, ""))
        self.assertEqual(self.machine.execute("false | true")[0], 1)
        self.assertNotEqual(self.machine.execute("echo $UNSET_VARIABLE")[0], 0)
        self.assertEqual(self.machine.execute("whoami"), (0, "root\n"))

    def test_fail_raises_when_the_command_succeeds_and_returns_stdout(self) -> None:
        self.assertEqual(self.machine.fail("echo no; exit 1"), "no\n")
        with self.assertRaisesRegex(RequestedAssertionFailed, r"command `true` unexpectedly succeeded"):
            self.machine.fail("true")

    def test_execute_times_out_with_timeouts_status(self) -> None:
        start = time.monotonic()
        self.assertEqual(self.machine.execute("sleep 30", timeout=1)[0], 124)
        self.assertLess(time.monotonic() - start, 10)

    def test_execute_without_check_return_or_output(self) -> None:
        self.assertEqual(self.machine.execute("echo x; exit 5", check_return=False), (-1, "x\n"))
        self.assertEqual(self.machine.execute("touch /tmp/detached", check_output=False), (-2, ""))
        self.machine.wait_for_file("/tmp/detached", timeout=10)

    def test_wait_until_succeeds_retries_until_it_succeeds(self) -> None:
        self.machine.succeed("rm -f /tmp/count")
        out = self.machine.wait_until_succeeds(
            "echo x >> /tmp/count; n=$(wc -l < /tmp/count); echo $n; test $n -ge 3", timeout=30
        )
        self.assertEqual(out, "3\n")

    def test_wait_until_succeeds_raises_at_its_timeout(self) -> None:
        start = time.monotonic()
        with self.assertRaisesRegex(RequestedAssertionFailed, r"action timed out after .* seconds \(timeout=3\)"):
            self.machine.wait_until_succeeds("false", timeout=3)
        self.assertGreaterEqual(time.monotonic() - start, 3)

    def test_wait_until_fails_returns_the_failing_output(self) -> None:
        self.assertEqual(self.machine.wait_until_fails("echo gone; false", timeout=5), "gone\n")

    def test_sleep_runs_on_the_machine(self) -> None:
        start = time.monotonic()
        self.machine.sleep(1)
        self.assertGreaterEqual(time.monotonic() - start, 1)

    def test_unit_properties_and_info(self) -> None:
        self.machine.wait_for_unit("multi-user.target", timeout=60)
        self.assertEqual(self.machine.get_unit_property("multi-user.target", "ActiveState"), "active")
        info = self.machine.get_unit_info("multi-user.target")
        self.assertEqual(info["Id"], "multi-user.target")
        status, out = self.machine.systemctl("is-active multi-user.target")
        self.assertEqual((status, out), (0, "active\n"))
        self.machine.require_unit_state("multi-user.target")
        with self.assertRaises(RequestedAssertionFailed):
            self.machine.require_unit_state("multi-user.target", "inactive")

    def test_wait_for_unit_raises_on_failed_and_on_inactive_with_no_job(self) -> None:
        self.machine.succeed("systemd-run --unit=doomed -p RemainAfterExit=no false")
        with self.assertRaisesRegex(RequestedAssertionFailed, r'unit "doomed.service" reached state "failed"'):
            self.machine.wait_for_unit("doomed.service", timeout=30)
        with self.assertRaisesRegex(RequestedAssertionFailed, r"is inactive and there are no pending jobs"):
            self.machine.wait_for_unit("no-such-unit.service", timeout=30)

    def test_wait_for_unit_waits_for_a_unit_that_becomes_active(self) -> None:
        # Activating for 2 s, with its start job pending meanwhile. Right
        # after --no-block the job may not have begun yet: inactive with a
        # job queued is as much "not yet active" as activating.
        self.machine.succeed("systemd-run --no-block --unit=later -p Type=oneshot -p RemainAfterExit=yes sleep 2")
        self.assertIn(self.machine.get_unit_property("later.service", "ActiveState"), ("inactive", "activating"))
        self.machine.wait_for_unit("later.service", timeout=30)
        self.assertEqual(self.machine.get_unit_property("later.service", "ActiveState"), "active")

    def test_copy_from_host(self) -> None:
        with open(f"/tmp/handoff-driver-{os.getpid()}", "w") as f:
            f.write("from the host\n")
        try:
            self.machine.copy_from_host(f.name, "/srv/copied/file")
        finally:
            os.unlink(f.name)
        self.assertEqual(self.machine.succeed("cat /srv/copied/file; stat -c %U:%G /srv/copied/file"), "from the host\nroot:root\n")


class Lifecycle(unittest.TestCase):
    """shutdown, crash and start: a stopped machine boots again on its next command."""

    container = f"handoff-driver-lifecycle-{os.getpid()}"

    def setUp(self) -> None:
        self.machine = create(self.container)

    def tearDown(self) -> None:
        remove(self.container)

    def state(self) -> str:
        done = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Status}}", self.container],
            stdout=subprocess.PIPE,
            text=True,
        )
        return done.stdout.strip()

    def test_start_does_not_wait_for_the_boot_and_commands_do(self) -> None:
        self.assertFalse(self.machine.is_up())
        self.machine.start()
        self.assertEqual(self.state(), "running")
        self.assertFalse(self.machine.is_up())
        self.machine.succeed("true")
        self.assertTrue(self.machine.is_up())

    def test_shutdown_powers_off_and_the_next_command_boots_again(self) -> None:
        self.machine.succeed("touch /var/kept")
        self.machine.shutdown()
        self.assertFalse(self.machine.is_up())
        self.assertEqual(self.state(), "exited")
        # The disk survives, as a VM's does.
        self.machine.succeed("test -e /var/kept")

    def test_crash_stops_at_once(self) -> None:
        self.machine.succeed("true")
        start = time.monotonic()
        self.machine.crash()
        self.assertLess(time.monotonic() - start, 10)
        self.assertFalse(self.machine.is_up())
        self.assertEqual(self.state(), "exited")


class Semantics(unittest.TestCase):
    def test_retry_calls_a_last_time_and_raises(self) -> None:
        calls = []

        def never(last: bool) -> bool:
            calls.append(last)
            return False

        with self.assertRaises(RequestedAssertionFailed):
            retry(never, timeout_seconds=2)
        self.assertEqual(calls[-1], True)
        self.assertTrue(all(not c for c in calls[:-1]))
        self.assertGreaterEqual(len(calls), 3)

    def run_script(self, script: str, names: list[str]) -> tuple[int, str]:
        machines = [QemuMachine(n, f"unused-{n}", Logger()) for n in names]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = Driver(machines, script, Logger()).run_tests()
        return status, err.getvalue()

    def test_a_single_node_is_also_machine(self) -> None:
        self.assertEqual(self.run_script("assert machine is server", ["server"])[0], 0)
        status, out = self.run_script("machine", ["a", "b"])
        self.assertEqual(status, 1)
        self.assertIn("NameError", out)

    def test_nodes_and_driver_symbols_are_defined(self) -> None:
        script = "assert callable(start_all) and callable(join_all) and callable(retry)\nwith subtest('x'):\n    pass\nt.assertEqual(1, 1)\nweb_1"
        self.assertEqual(self.run_script(script, ["lb", "web-1"])[0], 0)

    def test_a_failed_requested_assertion_reports_the_scripts_line(self) -> None:
        status, out = self.run_script("x = 1\nt.assertEqual(x, 2, 'x is not two')\n", ["m"])
        self.assertEqual(status, 1)
        self.assertIn('File "<string>", line 2', out)
        self.assertIn("t.assertEqual(x, 2, 'x is not two')", out)
        self.assertIn("x is not two", out)

    def test_a_failed_assert_fails_the_run_with_its_message(self) -> None:
        status, out = self.run_script("assert 1 == 2, 'one is not two'\n", ["m"])
        self.assertEqual(status, 1)
        self.assertIn("AssertionError: one is not two", out)

    def test_a_failing_subtest_is_named_and_fails_the_run(self) -> None:
        status, out = self.run_script("with subtest('the part'):\n    t.fail('broken')\n", ["m"])
        self.assertEqual(status, 1)
        self.assertIn('Test "the part" failed with error: "broken"', out)


if __name__ == "__main__":
    IMAGE = sys.argv.pop(1)
    unittest.main(verbosity=2)
