from driver import AbstractLogger as AbstractLogger
from driver import CompositeLogger as CompositeLogger
