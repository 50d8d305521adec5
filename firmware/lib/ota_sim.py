"""The ESP32's OTA partitions and its bootloader's rollback, simulated over files of the flash
directory for the unix port (board.UnixPort): esp32.Partition's methods, so ota.py runs on
both unchanged.

    table = SimTable(storage)      otadata.json and the images ota_0.bin, ota_1.bin
    table.reset()                  what the bootloader does at power-on
    image_version(partition)       the version a simulated image names
"""

import json

from updates import BLOCK, SIM_IMAGE_MAGIC, version_key


def image_version(partition):
    """The version a simulated image in `partition` names, or None (no image written, or a
    real ESP32 image, whose version is the VERSION frozen into it)."""
    buf = bytearray(64)
    partition.readblocks(0, buf)
    head = bytes(buf)
    if not head.startswith(SIM_IMAGE_MAGIC) or b"\n" not in head:
        return None
    text = head[len(SIM_IMAGE_MAGIC) : head.index(b"\n")].decode()
    try:
        version_key(text)
    except ValueError:
        return None
    return text


class SimPartition:
    """esp32.Partition's methods over a file of the flash directory (the unix port)."""

    def __init__(self, table, label):
        self.table = table
        self.label = label

    def info(self):
        return (0, 0x10, 0, self.table.blocks * BLOCK, self.label, False)

    def ioctl(self, op, arg):
        if op == 4:
            return self.table.blocks
        if op == 5:
            return BLOCK
        return None

    def get_next_update(self):
        return SimPartition(self.table, "ota_1" if self.label == "ota_0" else "ota_0")

    def readblocks(self, block, buf):
        n = self.table.storage.read_at(self.label + ".bin", block * BLOCK, buf)
        for i in range(n, len(buf)):
            buf[i] = 0xFF  # erased flash

    def writeblocks(self, block, buf):
        self.table.power()
        # in place, one block at a time: the heap never holds the image (MicroPython's is small)
        self.table.storage.write_at(self.label + ".bin", block * BLOCK, buf)

    def set_boot(self):
        self.table.set_boot(self.label)


class SimTable:
    """Two OTA app partitions and the otadata of the ESP-IDF bootloader with app rollback:
    set_boot makes an image "new"; the reset that boots it makes it "pending"; a reset while
    it is still pending marks it "aborted" and boots the other, valid one."""

    DATA = "otadata.json"

    def __init__(self, storage, blocks=64, power=None):
        self.storage = storage
        self.blocks = blocks
        self.power = power or (lambda: None)  # called before every flash write (tests cut it)
        raw = storage.read(self.DATA)
        states = {"ota_0": "valid", "ota_1": "empty"}
        fresh = {"boot": "ota_0", "running": "ota_0", "states": states}
        self.data = json.loads(raw) if raw else fresh  # type: dict

    def _save(self):
        self.power()
        self.storage.write(self.DATA + ".tmp", json.dumps(self.data))
        self.storage.rename(self.DATA + ".tmp", self.DATA)

    def running(self):
        return SimPartition(self, self.data["running"])

    def set_boot(self, label):
        self.data["boot"] = label
        self.data["states"][label] = "new"
        self._save()

    def mark_app_valid_cancel_rollback(self):
        self.data["states"][self.data["running"]] = "valid"
        self._save()

    def reset(self):
        """The bootloader at power-on."""
        d = self.data
        boot = d["boot"]
        state = d["states"][boot]
        if state == "new":
            d["states"][boot] = "pending"
        elif state in ("pending", "aborted", "empty"):
            d["states"][boot] = "aborted" if state == "pending" else state
            boot = "ota_1" if boot == "ota_0" else "ota_0"
            d["boot"] = boot
        d["running"] = boot
        self._save()
        return boot
