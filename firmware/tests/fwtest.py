"""Helpers of the firmware tests: scratch directories and a storage whose power can be cut."""

import os

_COUNT = [0]


def scratch():
    """A fresh, empty directory under FW_SCRATCH (set by tests/firmware/conftest.py)."""
    base = os.getenv("FW_SCRATCH")
    if not base:
        raise RuntimeError("FW_SCRATCH is not set: run through tests/firmware")
    _COUNT[0] += 1
    path = base + "/s" + str(_COUNT[0])
    os.mkdir(path)
    return path


class PowerCut(Exception):
    """The simulated power failed in the middle of a write."""


class FaultyStorage:
    """`inner` with a budget of bytes: the write that exceeds it stores only the bytes that
    fit (a torn write) and raises PowerCut; rename and remove cost one byte and are cut
    before they happen. Reads are free. `ops` lists the cost of every write tried, in order
    (for a caller that cuts at each of them in turn)."""

    def __init__(self, inner, budget):
        self._inner = inner
        self.budget = budget
        self.ops = []

    def _spend(self, n):
        self.ops.append(n)
        if n > self.budget:
            fit = self.budget
            self.budget = -1
            return fit
        self.budget -= n
        return n

    def read(self, name):
        return self._inner.read(name)

    def size(self, name):
        return self._inner.size(name)

    def read_at(self, name, offset, buf):
        return self._inner.read_at(name, offset, buf)

    def path(self, name):
        return self._inner.path(name)

    def write(self, name, data):
        fit = self._spend(len(data))
        if fit < 0:
            raise PowerCut()
        self._inner.write(name, data[:fit])
        if fit < len(data):
            raise PowerCut()

    def append(self, name, data):
        fit = self._spend(len(data))
        if fit < 0:
            raise PowerCut()
        if fit:
            self._inner.append(name, data[:fit])
        if fit < len(data):
            raise PowerCut()

    def rename(self, old, new):
        if self._spend(1) < 1:
            raise PowerCut()
        self._inner.rename(old, new)

    def remove(self, name):
        if self._spend(1) < 1:
            raise PowerCut()
        self._inner.remove(name)
