"""Runs IN MicroPython (the unix port) for tools/bench/firmware.py: one mode per run, its figures
printed as `FIG name value` lines, `OK` last when the run completed.

    micropython -X heapsize=... fw_probe.py times FLASH_DIR PORT [PYSTONE_DIR]
    micropython -X heapsize=... fw_probe.py seal

times: sign, verify, seal, fingerprint (capture + extract), score (model input + model), publish
(QoS 1 to PUBACK), a whole report, garbage per sealed report, bytes per report, the heap of an
outbox entry (40- and 600-byte payloads), and pystone.
seal: the signing path alone (five reports sealed).
The soak of the whole firmware is fw_soak.py: a module of its own, so that its heap figure
holds the firmware and the soak's few lines, not this probe's.
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


def _outbox_entry_bytes(flash_dir, size):
    """The heap one outbox entry takes, its payload `size` bytes (16 put, distinct)."""
    import outbox
    import storage

    box = outbox.Outbox(storage.FileStorage(flash_dir + "/outbox-" + str(size)), max_messages=64)
    gc.collect()
    before = gc.mem_alloc()
    for i in range(16):
        box.put(bytes((i,)) * size)
    gc.collect()
    return (gc.mem_alloc() - before) / 16


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
    # the outbox keeps payloads on flash: what an entry takes does not grow with its payload
    fig("outbox_entry_40_bytes", _outbox_entry_bytes(flash_dir, 40))
    fig("outbox_entry_600_bytes", _outbox_entry_bytes(flash_dir, 600))

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


def main(argv):
    mode = argv[1]
    if mode == "times":
        times(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
    elif mode == "seal":
        seal()
    print("OK")


main(sys.argv)
