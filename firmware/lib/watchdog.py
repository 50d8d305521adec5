"""The watchdog, fed only on progress: machine.WDT on the ESP32 (a hung loop resets the board),
StubWDT in the unix port. `progress()` feeds it when the device did something useful since the
last feed (a report stored, a packet handled, a reconnect attempt made); a loop that spins
without progress for the WDT's timeout is reset.

    dog = Watchdog(machine.WDT(timeout=30000))
    dog.progress()      something moved forward
    dog.feed_if_due()   once per loop: feeds only after progress
"""


class StubWDT:
    """machine.WDT's interface, counting feeds (the unix port has no watchdog)."""

    def __init__(self, timeout=0):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Watchdog:
    def __init__(self, wdt):
        self.wdt = wdt
        self._moved = True

    def progress(self):
        self._moved = True

    def feed_if_due(self):
        if self._moved:
            self.wdt.feed()
            self._moved = False
