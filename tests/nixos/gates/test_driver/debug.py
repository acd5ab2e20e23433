from driver import DebugAbstract as DebugAbstract
from driver import DebugNop as DebugNop
