"""The decisions of the stand-in switch-to-configuration
(tests/nixos/switch-to-configuration), checked directly: which units it
stops, starts, restarts, reloads or leaves alone for a pair of systems,
against what nixpkgs' switch-to-configuration-ng decides
(pkgs/by-name/sw/switch-to-configuration-ng/src/main.rs at 0145c6da2896).
Each system is a directory of unit files; systemd's view (the active
units, their states and fragment paths) is given as data, so that nothing
here needs systemd, podman or root:

  python3 tests/nixos/switch_test.py [-v] [TestCase.test_name ...]
"""

import importlib.util
import os
import tempfile
import unittest
from importlib.machinery import SourceFileLoader
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_stand_in():
    """The stand-in as a module (its file has no .py suffix); its main()
    runs only as a script."""
    loader = SourceFileLoader("switch_to_configuration", str(HERE / "switch-to-configuration"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


stc = load_stand_in()

# A unit as handoff's module renders NAME.service (nix/module.nix), trimmed.
SERVICE = """[Unit]
After=hello.socket
Description=hello, a handoff service
Documentation=https://github.com/handoff-rs/handoff#operations
Requires=hello.socket

[Service]
Environment="PATH=/nix/store/00000000000000000000000000000000-coreutils/bin"
ExecReload=/nix/store/00000000000000000000000000000000-hello/bin/hello --config /nix/store/1-hello.toml reload --pid $MAINPID
ExecStart=/nix/store/00000000000000000000000000000000-hello/bin/hello --config /nix/store/1-hello.toml
ExecStop=/nix/store/00000000000000000000000000000000-hello/bin/hello stop --pid=${MAINPID}
NotifyAccess=main
Type=notify
{extra}
[Install]
WantedBy=multi-user.target
"""

SOCKET = """[Unit]
Description=hello, a handoff service: listening socket

[Socket]
Backlog=4096
FileDescriptorName=http
ListenStream={port}

[Install]
WantedBy=sockets.target
"""

MOUNT = """[Unit]
Description=data

[Mount]
What=/dev/vdb
Where=/data
{options}
"""


def service(extra: str = "", start: str = "1-hello.toml") -> str:
    return SERVICE.replace("{extra}", extra).replace("1-hello.toml", start)


class Systems:
    """The running system's unit directory (/etc/systemd/system) and the
    new system's (TOPLEVEL/etc/systemd/system), in a temporary directory."""

    def __init__(self, test: unittest.TestCase):
        tmp = tempfile.TemporaryDirectory()
        test.addCleanup(tmp.cleanup)
        self.root = Path(tmp.name)
        self.old = self.root / "etc/systemd/system"
        self.new = self.root / "toplevel/etc/systemd/system"
        self.old.mkdir(parents=True)
        self.new.mkdir(parents=True)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def old_unit(self, name: str, text: str) -> None:
        self._write(self.old / name, text)

    def new_unit(self, name: str, text: str) -> None:
        self._write(self.new / name, text)

    def both(self, name: str, old: str, new: str | None = None) -> None:
        self.old_unit(name, old)
        self.new_unit(name, old if new is None else new)

    def plan(self, active: dict[str, str], paths: dict[str, str] | None = None):
        """The stand-in's plan with `active` (unit: ActiveState) running;
        each unit's fragment is its file in the old directory unless
        `paths` says otherwise."""
        fragments = {unit: str(self.old / unit) for unit in active}
        fragments.update(paths or {})
        return stc.plan_units(self.old, self.new, active, fragments)


def actions(plan) -> dict[str, list[str]]:
    """The plan's non-empty sets, sorted."""
    sets = {
        "stop": plan.stop,
        "start": plan.start,
        "restart": plan.restart,
        "reload": plan.reload,
        "skip": plan.skip,
    }
    return {verb: sorted(units) for verb, units in sets.items() if units}


def parsed(text: str) -> dict[str, dict[str, list[str]]]:
    """One unit file's text, parsed as the stand-in parses unit files."""
    into: dict[str, dict[str, list[str]]] = {}
    stc.parse_ini(text, into)
    return into


def unit(**sections: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    return dict(sections)


class Compare(unittest.TestCase):
    """compare(), as compare_units decides."""

    def test_equal_except_install_and_ignored_unit_keys_is_equal(self):
        old = parsed(service())
        new = parsed(
            service().replace("Description=hello, a handoff service", "Description=hello, renamed")
            .replace("WantedBy=multi-user.target", "WantedBy=default.target")
            .replace("[Unit]\n", "[Unit]\nOnFailure=notify@%n.service\nRefuseManualStop=false\n")
        )
        self.assertNotEqual(old, new)
        self.assertEqual(stc.compare(old, new), "equal")

    def test_mount_options_added_needs_a_restart(self):
        old = parsed(MOUNT.format(options=""))
        new = parsed(MOUNT.format(options="Options=ro"))
        self.assertEqual(stc.compare(old, new), "restart")

    def test_mount_options_removed_needs_a_restart(self):
        old = parsed(MOUNT.format(options="Options=ro"))
        new = parsed(MOUNT.format(options=""))
        self.assertEqual(stc.compare(old, new), "restart")

    def test_mount_options_changed_needs_a_reload(self):
        old = parsed(MOUNT.format(options="Options=ro"))
        new = parsed(MOUNT.format(options="Options=rw,noatime"))
        self.assertEqual(stc.compare(old, new), "reload")

    def test_two_new_sections_need_a_restart(self):
        # Each would pass alone ([Unit] of ignored keys, [Service] of only
        # ExecReload=); compare_units accepts exactly one new section.
        old = unit(Mount={"What": ["/dev/vdb"]})
        new = unit(Mount={"What": ["/dev/vdb"]}, Unit={"Description": ["x"]}, Service={"ExecReload": ["y"]})
        self.assertEqual(stc.compare(old, new), "restart")
        self.assertEqual(stc.compare(old, unit(Mount={"What": ["/dev/vdb"]}, Service={"ExecReload": ["y"]})), "reload")
        self.assertEqual(stc.compare(old, unit(Mount={"What": ["/dev/vdb"]}, Unit={"Description": ["x"]})), "equal")
        reload_triggers = unit(Mount={"What": ["/dev/vdb"]}, Unit={"Description": ["x"], "X-Reload-Triggers": ["t"]})
        self.assertEqual(stc.compare(old, reload_triggers), "reload")

    def test_the_real_programs_own_cases(self):
        # compare_units' unit tests in main.rs, case for case.
        cases = [
            ({}, {}, "equal"),
            (unit(Unit={}), {}, "equal"),
            (unit(Unit={"X-Reload-Triggers": ["foobar"]}), {}, "equal"),
            (unit(foobar={}), {}, "restart"),
            (unit(Mount={"Options": []}), unit(Mount={"Options": ["ro"]}), "reload"),
            ({}, unit(Unit={"X-Reload-Triggers": ["foobar"]}), "reload"),
            (unit(Unit={"X-Reload-Triggers": ["foobar"]}), unit(Unit={"X-Reload-Triggers": ["barfoo"]}), "reload"),
            ({}, unit(Service={"ExecReload": ["foobar"]}), "reload"),
            (unit(Service={"ExecReload": ["foobar"]}), unit(Service={"ExecReload": ["barfoo"]}), "reload"),
            (
                unit(Unit={"Description": ["x"]}),
                unit(Unit={"Description": ["x"]}, Service={"ExecStart": ["y"]}),
                "restart",
            ),
            (
                unit(Unit={"Description": ["x"]}),
                unit(Unit={"Description": ["x"]}, Service={"ExecReload": ["y"]}),
                "reload",
            ),
            (
                unit(Service={"ExecStart": ["x"], "ExecReload": ["y"]}),
                unit(Service={"ExecStart": ["x"]}),
                "equal",
            ),
            (unit(Service={"ExecReload": ["y"]}), {}, "equal"),
            (
                unit(Service={"ExecStart": ["x"]}),
                unit(Service={"ExecStart": ["x"], "ExecReload": ["y"]}),
                "reload",
            ),
            (unit(Mount={"Type": ["ext4"]}), unit(Mount={"Type": ["btrfs"]}), "restart"),
        ]
        for old, new, expected in cases:
            with self.subTest(old=old, new=new):
                self.assertEqual(stc.compare(old, new), expected)


class Plans(unittest.TestCase):
    """plan_units() and settle_reloads(): the units each phase acts on."""

    def setUp(self):
        self.systems = Systems(self)

    def test_equal_but_install_and_ignored_unit_keys_is_no_action(self):
        s = self.systems
        s.both(
            "hello.service",
            service(),
            service().replace("Description=hello, a handoff service", "Description=hello, renamed")
            .replace("WantedBy=multi-user.target", "WantedBy=default.target"),
        )
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {})

    def test_changed_execstart_stops_and_starts(self):
        s = self.systems
        s.both("hello.service", service(), service(start="2-hello.toml"))
        self.assertEqual(
            actions(s.plan({"hello.service": "active"})),
            {"stop": ["hello.service"], "start": ["hello.service"]},
        )

    def test_changed_execstart_without_stop_if_changed_restarts(self):
        s = self.systems
        s.both(
            "hello.service",
            service("X-StopIfChanged=false\n"),
            service("X-StopIfChanged=false\n", start="2-hello.toml"),
        )
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"restart": ["hello.service"]})

    def test_only_reload_triggers_changed_reloads(self):
        s = self.systems
        s.both(
            "hello.service",
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=/nix/store/1-a\n"),
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=/nix/store/2-a\n"),
        )
        self.assertEqual(actions(s.plan({"hello.service": "activating"})), {"reload": ["hello.service"]})

    def test_reload_if_changed_service_reloads(self):
        # As handoff's module renders it: reloadIfChanged and stopIfChanged =
        # false, its socket running.
        s = self.systems
        extra = "X-ReloadIfChanged=true\nX-StopIfChanged=false\n"
        s.both("hello.service", service(extra), service(extra, start="2-hello.toml"))
        s.both("hello.socket", SOCKET.format(port=8080))
        self.assertEqual(
            actions(s.plan({"hello.service": "active", "hello.socket": "active"})),
            {"reload": ["hello.service"]},
        )

    def test_dropin_changing_execstart_restarts(self):
        s = self.systems
        s.both("hello.service", service("X-StopIfChanged=false\n"))
        s.old_unit("hello.service.d/overrides.conf", "[Service]\nExecStart=\nExecStart=/bin/true one\n")
        s.new_unit("hello.service.d/overrides.conf", "[Service]\nExecStart=\nExecStart=/bin/true two\n")
        self.assertEqual(stc.parse_unit(s.new / "hello.service")["Service"]["ExecStart"], ["/bin/true two"])
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"restart": ["hello.service"]})

    def test_activating_unit_to_reload_is_reloaded_not_started(self):
        s = self.systems
        s.both(
            "hello.service",
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=1\n"),
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=2\n"),
        )
        plan = s.plan({"hello.service": "active"})
        stc.settle_reloads(plan, s.new, lambda unit: "activating")
        self.assertEqual(actions(plan), {"reload": ["hello.service"]})

    def test_stopped_unit_to_reload_is_started_instead(self):
        s = self.systems
        s.both(
            "hello.service",
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=1\n"),
            service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=2\n"),
        )
        for state in ("inactive", "deactivating", "failed", "reloading"):
            with self.subTest(state=state):
                plan = s.plan({"hello.service": "active"})
                stc.settle_reloads(plan, s.new, lambda unit: state)
                self.assertEqual(actions(plan), {"start": ["hello.service"]})

    def test_start_instead_of_reload_follows_the_real_rule(self):
        # Started when !RefuseManualStart || X-OnlyManualStart, as the real
        # one's condition reads.
        s = self.systems
        for refuse, only_manual, started in [
            (False, False, True),
            (True, False, False),
            (True, True, True),
            (False, True, True),
        ]:
            with self.subTest(RefuseManualStart=refuse, OnlyManualStart=only_manual):
                keys = f"RefuseManualStart={'yes' if refuse else 'no'}\nX-OnlyManualStart={'yes' if only_manual else 'no'}\n"
                s.both(
                    "hello.service",
                    service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=1\n" + keys),
                    service().replace("[Unit]\n", "[Unit]\nX-Reload-Triggers=2\n" + keys),
                )
                plan = s.plan({"hello.service": "active"})
                self.assertEqual(actions(plan), {"reload": ["hello.service"]})
                stc.settle_reloads(plan, s.new, lambda unit: "inactive")
                self.assertEqual(actions(plan), {"start": ["hello.service"]} if started else {})

    def test_new_unit_is_started_by_its_target(self):
        # A new unit is not running, so no rule names it: the activation
        # links it into its target's wants, and every active target is
        # started again (quietly).
        s = self.systems
        current, toplevel = self.systems.root / "current", self.systems.root / "toplevel"
        (current / "etc/systemd/system").mkdir(parents=True)
        s.new_unit("hello.service", service())
        s.new_unit("hello.socket", SOCKET.format(port=8080))
        lib = s.root / "lib/systemd/system"
        lib.mkdir(parents=True)
        (lib / "multi-user.target").write_text("[Unit]\nDescription=Multi-User System\n")
        (lib / "sockets.target").write_text("[Unit]\nDescription=Sockets\n")
        plan = s.plan(
            {"multi-user.target": "active", "sockets.target": "active"},
            {"multi-user.target": str(lib / "multi-user.target"), "sockets.target": str(lib / "sockets.target")},
        )
        self.assertEqual(actions(plan), {"start": ["multi-user.target", "sockets.target"]})
        self.assertEqual(stc.listed(plan.start, plan.quiet), "")
        stc.install_units(current, toplevel, s.old)
        self.assertEqual(os.readlink(s.old / "multi-user.target.wants/hello.service"), "../hello.service")
        self.assertEqual(os.readlink(s.old / "sockets.target.wants/hello.socket"), "../hello.socket")
        self.assertEqual((s.old / "hello.service").read_text(), service())

    def test_removed_unit_is_stopped(self):
        s = self.systems
        s.old_unit("hello.service", service())
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"stop": ["hello.service"]})

    def test_removed_unit_masked_in_the_new_system_is_stopped(self):
        s = self.systems
        s.old_unit("hello.service", service())
        os.symlink("/dev/null", s.new / "hello.service")
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"stop": ["hello.service"]})

    def test_removed_unit_with_stop_on_removal_false_is_kept(self):
        s = self.systems
        s.old_unit("hello.service", service().replace("[Unit]\n", "[Unit]\nX-StopOnRemoval=false\n"))
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {})

    def test_socket_activated_service_with_stop_if_changed(self):
        # Its sockets are stopped with it and started again; the socket
        # starts the service.
        s = self.systems
        s.both("hello.service", service(), service(start="2-hello.toml"))
        s.both("hello.socket", SOCKET.format(port=8080))
        self.assertEqual(
            actions(s.plan({"hello.service": "active", "hello.socket": "active"})),
            {"stop": ["hello.service", "hello.socket"], "start": ["hello.socket"]},
        )

    def test_socket_activated_service_with_sockets_and_not_socket_activated(self):
        s = self.systems
        sockets = "Sockets=hello.socket hello-https.socket\n"
        s.both("hello.service", service(sockets), service(sockets, start="2-hello.toml"))
        s.both("hello.socket", SOCKET.format(port=8080))
        s.both("hello-https.socket", SOCKET.format(port=8443))
        active = {"hello.service": "active", "hello.socket": "active", "hello-https.socket": "active"}
        self.assertEqual(
            actions(s.plan(active)),
            {
                "stop": ["hello-https.socket", "hello.service", "hello.socket"],
                "start": ["hello-https.socket", "hello.socket"],
            },
        )
        opt_out = sockets + "X-NotSocketActivated=true\n"
        s.both("hello.service", service(opt_out), service(opt_out, start="2-hello.toml"))
        self.assertEqual(
            actions(s.plan(active)),
            {
                "stop": ["hello-https.socket", "hello.service", "hello.socket"],
                "start": ["hello-https.socket", "hello.service", "hello.socket"],
            },
        )

    def test_service_becoming_socket_activated_is_left_to_its_socket(self):
        # Its socket is new (not running): the service is stopped and not
        # started, the socket's target starts the socket.
        s = self.systems
        s.both("hello.service", service(), service(start="2-hello.toml"))
        s.new_unit("hello.socket", SOCKET.format(port=8080))
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"stop": ["hello.service"]})

    def test_changed_socket_is_left_alone(self):
        # handle_modified_unit's branch for sockets is empty: a changed
        # socket is not stopped, restarted, or listed as NOT restarted.
        s = self.systems
        s.both("hello.socket", SOCKET.format(port=8080), SOCKET.format(port=8081))
        self.assertEqual(stc.compare(stc.parse_unit(s.old / "hello.socket"), stc.parse_unit(s.new / "hello.socket")), "restart")
        self.assertEqual(actions(s.plan({"hello.socket": "active"})), {})

    def test_restart_if_changed_false_is_skipped(self):
        s = self.systems
        s.both("hello.service", service("X-RestartIfChanged=false\n"), service("X-RestartIfChanged=false\n", start="2"))
        self.assertEqual(actions(s.plan({"hello.service": "active"})), {"skip": ["hello.service"]})

    def test_mount_options_added_or_removed_restarts(self):
        s = self.systems
        for old, new in [("", "Options=ro"), ("Options=ro", "")]:
            with self.subTest(old=old, new=new):
                s.both("data.mount", MOUNT.format(options=old), MOUNT.format(options=new))
                self.assertEqual(actions(s.plan({"data.mount": "active"})), {"restart": ["data.mount"]})
        s.both("data.mount", MOUNT.format(options="Options=ro"), MOUNT.format(options="Options=rw"))
        self.assertEqual(actions(s.plan({"data.mount": "active"})), {"reload": ["data.mount"]})
        # / and /nix are reloaded, never unmounted.
        s.both("nix.mount", MOUNT.format(options=""), MOUNT.format(options="Options=ro"))
        self.assertEqual(actions(s.plan({"nix.mount": "active"})), {"reload": ["nix.mount"]})

    def test_units_not_from_the_unit_directory_are_left_alone(self):
        s = self.systems
        s.both("hello.service", service(), service(start="2-hello.toml"))
        plan = s.plan({"hello.service": "active"}, {"hello.service": "/run/systemd/generator/hello.service"})
        self.assertEqual(actions(plan), {})

    def test_targets_are_started_again(self):
        s = self.systems
        s.both("network.target", "[Unit]\nDescription=Network\nX-StopOnReconfiguration=true\n")
        s.both("suspend.target", "[Unit]\nDescription=Suspend\n")
        s.both("manual.target", "[Unit]\nRefuseManualStart=yes\n")
        plan = s.plan({"network.target": "active", "suspend.target": "active", "manual.target": "active"})
        self.assertEqual(actions(plan), {"stop": ["network.target"], "start": ["network.target"]})
        self.assertEqual(plan.quiet, {"network.target"})

    def test_template_instance_is_compared_by_its_template(self):
        # worker@a.service has no file of its own: its template's file,
        # drop-ins and the instance's drop-ins are compared; its implicit
        # socket is worker.socket.
        s = self.systems
        s.both("worker@.service", service(), service(start="2-hello.toml"))
        s.both("worker.socket", SOCKET.format(port=8080))
        fragment = {"worker@a.service": str(s.old / "worker@.service")}
        self.assertEqual(
            actions(s.plan({"worker@a.service": "active", "worker.socket": "active"}, fragment)),
            {"stop": ["worker.socket", "worker@a.service"], "start": ["worker.socket"]},
        )
        # No socket now: the instance's drop-in changed, so it is stopped and
        # started.
        (s.old / "worker.socket").unlink()
        (s.new / "worker.socket").unlink()
        s.both("worker@.service", service())
        s.old_unit("worker@a.service.d/overrides.conf", "[Service]\nEnvironment=A=1\n")
        s.new_unit("worker@a.service.d/overrides.conf", "[Service]\nEnvironment=A=2\n")
        self.assertEqual(
            actions(s.plan({"worker@a.service": "active"}, fragment)),
            {"stop": ["worker@a.service"], "start": ["worker@a.service"]},
        )

    def test_template_instance_whose_dropins_are_gone_is_stopped(self):
        # An instance NixOS defined by drop-ins (overrideStrategy "asDropin")
        # is removed when the new system has none of them left.
        s = self.systems
        s.both("worker@.service", service())
        s.old_unit("worker@a.service.d/overrides.conf", "[Unit]\nDescription=a\n")
        fragment = {"worker@a.service": str(s.old / "worker@.service")}
        self.assertEqual(actions(s.plan({"worker@a.service": "active"}, fragment)), {"stop": ["worker@a.service"]})
        # A masked drop-in counts as gone too; a manual instance (no
        # drop-ins before) is left running.
        os.makedirs(s.new / "worker@a.service.d")
        os.symlink("/dev/null", s.new / "worker@a.service.d/overrides.conf")
        self.assertEqual(actions(s.plan({"worker@a.service": "active"}, fragment)), {"stop": ["worker@a.service"]})
        self.assertEqual(actions(s.plan({"worker@b.service": "active"}, {"worker@b.service": fragment["worker@a.service"]})), {})


class Listing(unittest.TestCase):
    """What the stand-in reads of systemd's unit list."""

    LIST = (
        "hello.service loaded active running hello, a handoff service\n"
        "hello.socket loaded active listening hello: listening socket\n"
        "old.service loaded inactive dead old\n"
        "dev-vdb.device loaded active plugged /dev/vdb\n"
        "sys-devices-virtual-block-vdb.device loaded active plugged /dev/vdb\n"
        "boot.mount loaded activating mounting /boot\n"
    )
    SHOW = (
        "Id=hello.service\nFollowing=\nFragmentPath=/etc/systemd/system/hello.service\n\n"
        "Id=hello.socket\nFollowing=\nFragmentPath=/etc/systemd/system/hello.socket\n\n"
        "Id=dev-vdb.device\nFollowing=sys-devices-virtual-block-vdb.device\nFragmentPath=\n\n"
        "Id=sys-devices-virtual-block-vdb.device\nFollowing=\nFragmentPath=\n\n"
        "Id=boot.mount\nFragmentPath=/run/systemd/generator/boot.mount\n"
    )

    def test_units_following_another_are_not_listed(self):
        # get_active_units keeps a unit only if it follows no other unit and
        # is not inactive.
        active, fragments = stc.unit_table(self.LIST, self.SHOW)
        self.assertEqual(
            active,
            {
                "hello.service": "active",
                "hello.socket": "active",
                "sys-devices-virtual-block-vdb.device": "active",
                "boot.mount": "activating",
            },
        )
        self.assertEqual(fragments["hello.service"], "/etc/systemd/system/hello.service")
        self.assertEqual(fragments["boot.mount"], "/run/systemd/generator/boot.mount")

    def test_systemd_is_asked_about_the_units_that_are_not_inactive(self):
        calls = []

        def systemctl(*args, check=False):
            calls.append(args)
            out = self.LIST if args[0] == "list-units" else self.SHOW

            class Done:
                stdout = out

            return Done()

        self.addCleanup(setattr, stc, "systemctl", stc.systemctl)
        stc.systemctl = systemctl
        active, _ = stc.systemd_units()
        self.assertEqual(
            calls[1],
            (
                "show",
                "--property=Id,Following,FragmentPath",
                "--",
                "boot.mount",
                "dev-vdb.device",
                "hello.service",
                "hello.socket",
                "sys-devices-virtual-block-vdb.device",
            ),
        )
        self.assertNotIn("dev-vdb.device", active)


if __name__ == "__main__":
    unittest.main()
