# What nixpkgs' nixos/lib/test-script-prepend.py declares since the driver
# moved to ty and `ruff check --select F` (nixpkgs PR #509615, April 2026;
# NixOS 26.05 and later). ty reports a name declared and never bound, so the
# names are bound here, and each node is bound to a fake machine after this
# text. ruff lints the whole file, so nothing here may be unused. Written
# from that file's declarations; the imports name the real driver's modules,
# which tests/nixos/gates/test_driver/ provides.
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Generator, List, Optional, Union
from unittest import TestCase

from test_driver.debug import DebugAbstract, DebugNop
from test_driver.driver import Driver
from test_driver.logger import AbstractLogger, CompositeLogger
from typing_extensions import Protocol

from test_driver.machine import BaseMachine, NspawnMachine, QemuMachine
from test_driver.vlan import VLan


class CreateMachineProtocol(Protocol):
    def __call__(
        self,
        start_command: str | dict,
        *,
        name: Optional[str] = None,
        keep_machine_state: bool = False,
        **kwargs: Any,
    ) -> QemuMachine:
        raise Exception("type information only")


class PollingConditionProtocol(Protocol):
    def __call__(
        self,
        fun_: Optional[Callable] = None,
        *,
        seconds_interval: float = 2.0,
        description: Optional[str] = None,
    ) -> Union[Callable[[Callable], ContextManager], ContextManager]:
        raise Exception("type information only")


class AssertionTester(TestCase):
    pass


debug: DebugAbstract = DebugNop()
machines: List[BaseMachine] = []
machines_nspawn: List[NspawnMachine] = []
machines_qemu: List[QemuMachine] = []
t = AssertionTester()
vlans: List[VLan] = []


def create_fake_driver() -> Driver:
    raise Exception("fake driver")


driver = create_fake_driver()


def create_fake_qemu_machine() -> QemuMachine:
    raise Exception("fake qemu machine")


def create_fake_nspawn_machine() -> NspawnMachine:
    raise Exception("fake nspawn machine")


def create_fake_vlan() -> VLan:
    raise Exception("fake vlan")


def create_machine(
    start_command: str, name: str | None = None, keep_machine_state: bool = False
) -> QemuMachine:
    raise Exception("fake machine")


def dump_machine_ssh() -> None:
    return None


def join_all() -> None:
    return None


log: AbstractLogger = CompositeLogger([])


def polling_condition(
    fun: Callable | None, seconds_interval: float = 0.0, description: str | None = None
):
    pass


def retry(fn: Callable, timeout_seconds: int = 900) -> None:
    pass


def run_tests() -> None:
    return


def serial_stdout_off() -> None:
    return None


def serial_stdout_on() -> None:
    return None


def start_all() -> None:
    return


def test_script() -> None:
    return


@contextmanager
def subtest(str: str) -> Generator[None, None, None]:
    yield
