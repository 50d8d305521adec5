"""Runs IN MicroPython (the unix port) for tools/bench/firmware.py: the whole firmware from
boot through REPORTS reports, with an outage (connections refused for the middle fifth of the
run) and a reconnect. Its figures are printed as `FIG name value` lines, `OK` last when the run
completed: the heap's growth (free heap after a collection at a tenth and at the end of the
run), the acked edge, the connects and what is left unacked.

    micropython -X heapsize=... -m fw_soak FLASH_DIR REPORTS

Kept apart from fw_probe.py so that the minimum heap found for it is the firmware's and these
few lines', not the timing probe's too.
"""

import gc
import sys
import time


def fig(name, value):
    print("FIG", name, value)


def soak(flash_dir, reports):
    import board

    board.preload()  # as main.py boots
    import device
    import storage

    hw = board.unix_hardware(flash_dir)
    gc.collect()  # as main.py boots
    real_open = hw.open_socket
    down = [False]

    def open_socket(host, port):
        if down[0]:
            raise OSError(111)  # ECONNREFUSED: the network or broker is away
        return real_open(host, port)

    hw.open_socket = open_socket
    dev = device.Device(hw, storage.FileStorage(flash_dir))
    free_early = 0
    for i in range(reports):
        if i == reports * 2 // 5:
            down[0] = True
            dev.client.close()
        elif i == reports * 3 // 5:
            down[0] = False
        dev.report()
        for _ in range(3):
            dev.step()
        if i == reports // 10:
            gc.collect()
            free_early = gc.mem_free()
    deadline = time.ticks_add(time.ticks_ms(), 30000)
    while len(dev.box) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
        dev.step()
        time.sleep_ms(2)
    gc.collect()
    fig("heap_growth_bytes", free_early - gc.mem_free())
    fig("acked", dev.window.acked)
    fig("connects", dev.reconnector.connects)
    fig("unacked", len(dev.box))


soak(sys.argv[1], int(sys.argv[2]))
print("OK")
