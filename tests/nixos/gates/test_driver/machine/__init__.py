from driver import BaseMachine as BaseMachine
from driver import NspawnMachine as NspawnMachine
from driver import QemuMachine as QemuMachine
from driver import retry as retry
