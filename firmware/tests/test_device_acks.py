"""The device takes the bridge's time only from an ack of a message it numbered in this boot
(agent/timebase.py answers_this_boot): an ack queued in the broker's session before the boot,
hours old, must neither set its clock back nor make it trusted."""

import device
import ed25519
import messages
import timebase
import window

BRIDGE = ed25519.SigningKey(bytes(range(32)))
FLOOR = 1764288000000
HOUR = 3600000
ACK_TOPIC = "cp/v1/test/esp-1/ack"


class _Hw:
    def ticks_ms(self):
        return 1000

    def wall_ms(self):
        return 0  # no real-time clock: 1970 after a power cut


class _Device(device.Device):
    """The Device with only what receiving an ack uses (the real __init__ wants a provisioned
    flash, a key and a model)."""

    def __init__(self, first_seq):
        self.hw = _Hw()
        self.device_id = "esp-1"
        self._bridge = (device.cose.kid_for(BRIDGE.public), BRIDGE.public)
        self.filters = (ACK_TOPIC,)
        self.window = window.SendWindow(64, 4, 10000)
        self.time = timebase.start(FLOOR)
        self._boot_first_seq = first_seq
        self._trial_ack = None
        self.ota = None
        self.dropped_inbound = 0
        self.log = lambda line: None

    def _trial_acked(self, ack_seq):
        pass


def _ack(ack_seq, ts_ms):
    fields = {"sender": "bridge-1", "seq": 5, "boot": 1, "ts_ms": ts_ms, "device": "esp-1",
              "ack_seq": ack_seq}  # fmt: skip
    return messages.seal(messages.ACK, fields, BRIDGE)


def test_an_ack_from_before_the_boot_does_not_set_the_clock():
    dev = _Device(first_seq=7)
    dev._on_message(ACK_TOPIC, _ack(6, FLOOR + 5 * HOUR - 3 * HOUR), False)
    assert not timebase.trusted(dev.time) and dev.time[timebase.OFFSET] == 0
    dev._on_message(ACK_TOPIC, _ack(7, FLOOR + 5 * HOUR), False)  # answers this boot
    assert timebase.trusted(dev.time) and timebase.wall(dev.time, 0) == FLOOR + 5 * HOUR
    dev._on_message(ACK_TOPIC, _ack(8, FLOOR + 4 * HOUR), False)  # delayed: never backwards
    assert timebase.wall(dev.time, 0) == FLOOR + 5 * HOUR
