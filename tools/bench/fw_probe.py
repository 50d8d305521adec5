"""Runs IN MicroPython (the unix port) for tools/bench/firmware.py: one mode per run, its figures
printed as `FIG name value` lines, `OK` last when the run completed.

    micropython -X heapsize=... fw_probe.py times FLASH_DIR PORT [PYSTONE_DIR]
    micropython -X heapsize=... fw_probe.py seal
    micropython -X heapsize=... fw_probe.py soak FLASH_DIR REPORTS

times: sign, verify, seal, fingerprint (capture + extract), score (model input + model), publish
(QoS 1 to PUBACK), a whole report, garbage per sealed report, bytes per report, and pystone.
seal: the signing path alone (five reports sealed).
soak: the whole firmware from boot through REPORTS reports, with an outage (connections refused
for the middle fifth of the run) and a reconnect; the free heap after a collection at a tenth
and at the end of the run (growth), and the acked edge.
"""

import gc
import sys
import time

import cose
import ed25519
import messages

SEED = bytes(range(32))


def fig(name, value):
    print("FIG", name, value)


def _report_fields(seq=0):
    return {
        "sender": "esp32-bench", "seq": seq, "boot": 1, "ts_ms": 1764547200000,
        "model_id": "risk-v1", "model_sha256": bytes(messages.MODEL_SHA256_PREFIX), "risk_pm": 412,
        "features": bytes(20), "mono_ms": 86400123,
        "fingerprint": {i: (-1) ** i * (1000 + 7919 * i * i) for i in range(24)},
    }  # fmt: skip


def _ms(fn, n):
    start = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), start) / 1000 / n


def times(flash_dir, port, pystone_dir=None):
    import device
    import storage

    key = ed25519.SigningKey(SEED)
    payload = messages.encode(messages.REPORT, _report_fields())
    numbered = messages.with_seq(payload, 12345)
    sig_input = cose.sig_structure(cose.protected_for(cose.kid_for(key.public)), numbered)
    signature = key.sign(sig_input)
    fig("sign_ms", _ms(lambda: key.sign(sig_input), 20))
    fig("verify_ms", _ms(lambda: ed25519.verify(key.public, sig_input, signature), 10))
    fig("seal_ms", _ms(lambda: cose.sign1(messages.with_seq(payload, 12345), key), 20))
    envelope = cose.sign1(numbered, key)
    # garbage of one sealed report: allocation with the collector off (a large heap)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    cose.sign1(messages.with_seq(messages.encode(messages.REPORT, _report_fields()), 1), key)
    fig("garbage_bytes", gc.mem_alloc() - before)
    gc.enable()
    gc.collect()

    import board

    hw = board.unix_hardware(flash_dir)
    dev = device.Device(hw, storage.FileStorage(flash_dir))
    fig("fingerprint_ms", _ms(lambda: dev.assess(), 10))
    import fingerprint

    _risk, _x, fp = dev.last
    dev.report()  # the device's own report: its sizes once numbered and sealed
    own = messages.with_seq(dev.box.entries()[-1].payload, 12345)
    fig("payload_bytes", len(own))
    fig("envelope_bytes", len(cose.sign1(own, key)))
    fig(
        "score_ms",
        _ms(lambda: dev.model.score(fingerprint.model_input(fp, dev.cfg["baseline"])), 20),
    )
    import mqtt

    client = mqtt.MQTTClient("fw-bench", lambda: hw.open_socket("127.0.0.1", port))
    client.connect()
    acked = []
    client.on_puback = acked.append

    def publish():
        pid = client.publish("bench/fw", envelope, 1)
        while pid not in acked:
            client.poll(100)

    fig("publish_ms", _ms(publish, 50))

    def whole():
        risk, x, fp = dev.assess()
        fields = _report_fields()
        fields["risk_pm"], fields["features"] = risk, x
        fields["fingerprint"] = dict(enumerate(fp))
        data = messages.encode(messages.REPORT, fields)
        pid = client.publish("bench/fw", cose.sign1(messages.with_seq(data, 7), key), 1)
        while pid not in acked:
            client.poll(100)

    fig("report_ms", _ms(whole, 10))
    client.disconnect()
    if pystone_dir:
        sys.path.append(pystone_dir)
        import pystone

        best = 0
        for _ in range(3):
            best = max(best, pystone.pystones(20000)[1])
        fig("pystone", best)


def seal():
    key = ed25519.SigningKey(SEED)
    for seq in range(1, 6):
        cose.sign1(messages.with_seq(messages.encode(messages.REPORT, _report_fields()), seq), key)


def soak(flash_dir, reports):
    import board
    import device
    import storage

    hw = board.unix_hardware(flash_dir)
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


def main(argv):
    mode = argv[1]
    if mode == "times":
        times(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
    elif mode == "seal":
        seal()
    elif mode == "soak":
        soak(argv[2], int(argv[3]))
    print("OK")


main(sys.argv)
