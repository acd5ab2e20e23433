from driver import VLan as VLan
