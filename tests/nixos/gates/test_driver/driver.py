from driver import Driver as Driver
