"""Runs first at every reset: the ESP32 at 240 MHz (signing is mostly big-integer arithmetic,
which scales with the clock). Nothing here on the unix port."""

import sys

if sys.platform == "esp32":
    import machine

    machine.freq(240_000_000)
