"""Counters reserved on flash in blocks never repeat a number, whatever the resets."""

import random

from counters import Counter
from fwtest import FaultyStorage, PowerCut, scratch
from storage import FileStorage

HEAPSIZE = "64k"


def test_numbers_never_repeat_across_100_resets_at_random_points():
    random.seed(20261201)
    disk = FileStorage(scratch())
    last = 0
    count = 0
    cuts_in_writes = 0
    for _ in range(100):
        # a reset after a random number of takes, or a power cut inside a random write
        flash = FaultyStorage(disk, random.getrandbits(8))
        takes = random.getrandbits(6)
        try:
            counter = Counter(flash, "seq", block=8)
            for _ in range(takes):
                n = counter.take()
                # strictly increasing across every reset: no number is ever issued twice
                assert n > last, (n, last)
                last = n
                count += 1
        except PowerCut:
            cuts_in_writes += 1
    assert count > 500
    assert cuts_in_writes > 20  # both kinds of reset happened


def test_a_reset_costs_less_than_one_block():
    disk = FileStorage(scratch())
    counter = Counter(disk, "seq", block=16, first=1)
    assert [counter.take() for _ in range(20)] == list(range(1, 21))
    again = Counter(disk, "seq", block=16)
    first = again.take()
    assert 21 <= first <= 21 + 16


def test_a_reservation_torn_at_every_byte_never_lets_a_number_repeat():
    for cut in range(18 + 1):
        disk = FileStorage(scratch())
        flaky = FaultyStorage(disk, 1 << 30)
        counter = Counter(flaky, "seq", block=4)
        issued = [counter.take() for _ in range(4)]  # the next take writes a reservation
        flaky.budget = cut
        try:
            issued.append(counter.take())
        except PowerCut:
            pass
        assert Counter(disk, "seq", block=4).take() > max(issued), cut


def test_the_plain_crc32_equals_binascii():
    import binascii

    from storage import crc32_plain

    for data in (b"", b"a", b"123456789", bytes(range(256))):
        assert crc32_plain(data) == binascii.crc32(data)
    assert crc32_plain(b"123456789") == 0xCBF43926  # the check value of CRC-32/ISO-HDLC
