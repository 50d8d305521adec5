"""Flash storage as the firmware uses it, passed in so tests can cut the power mid-write.

    FileStorage(root)     files in a directory: littlefs on the ESP32, the host's in the
                          unix port
    read(name)            bytes, or None when the file is absent
    write(name, data)     replace the file (NOT atomic: callers frame and checksum)
    append(name, data)    add to the end and close (littlefs commits on close)
    rename(old, new)      replace `new` by `old` (atomic on littlefs and POSIX)
    remove(name)          delete if present
    size(name)            bytes in the file, -1 when absent
    path(name)            the file's path, for a writer that streams into it
    write_atomic(storage, name, data)    replace a small file whole (temporary file, rename)

Also the framing every persistent record uses: crc32 (binascii's, or a plain fallback).
"""

import os


def crc32_plain(data, value=None):
    """CRC-32 (IEEE 802.3, as binascii.crc32), for a port built without binascii.crc32."""
    crc = (value or 0) ^ 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


try:
    import binascii

    crc32 = binascii.crc32
except (ImportError, AttributeError):
    crc32 = crc32_plain


_ERASED = b"\xff" * 1024


def write_atomic(storage, name, data):
    """Replace `name` whole: written to name.tmp, then renamed over it (atomic on littlefs and
    POSIX), so a power cut leaves the old file or the new one."""
    storage.write(name + ".tmp", data)
    storage.rename(name + ".tmp", name)


class FileStorage:
    """Named files under `root` (created if missing)."""

    def __init__(self, root):
        self.root = root.rstrip("/")
        try:
            os.mkdir(self.root)
        except OSError:
            pass  # exists

    def path(self, name):
        """The file's path (for a writer that streams into it, as an HTTP download)."""
        return self.root + "/" + name

    _path = path

    def read(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        with open(self._path(name), "wb") as f:
            f.write(data)

    def append(self, name, data):
        with open(self._path(name), "ab") as f:
            f.write(data)

    def write_at(self, name, offset, data):
        """Write `data` at `offset` in place (the file created, a gap filled with 0xFF, as
        erased flash reads): a simulated partition written block by block never holds the
        whole image in the heap."""
        try:
            f = open(self._path(name), "r+b")
        except OSError:
            f = open(self._path(name), "w+b")
        try:
            end = f.seek(0, 2)
            while end < offset:
                n = min(offset - end, len(_ERASED))
                f.write(_ERASED[:n])
                end += n
            f.seek(offset)
            f.write(data)
        finally:
            f.close()

    def read_at(self, name, offset, buf):
        """Read into `buf` from `offset`: the number of bytes read (0 past the end or for a
        missing file)."""
        try:
            f = open(self._path(name), "rb")
        except OSError:
            return 0
        try:
            f.seek(offset)
            return f.readinto(buf) or 0
        finally:
            f.close()

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))

    def remove(self, name):
        try:
            os.remove(self._path(name))
        except OSError:
            pass

    def size(self, name):
        try:
            return os.stat(self._path(name))[6]
        except OSError:
            return -1
