"""Touch behaviour in the decision end to end (issue 13 item 8): a real broker, the bridge
process and real agents. The EV's emergencies are stepped up and its owner's phone confirms
each one with a fresh report that carries the confirming swipes. The first confirmations enrol
the user's touch template, the next is matched and drawn; then the phone is in a thief's hands
(the same key and data: `[sensors] impostor`, who presses confirm) and the thief's swipes are
refused with `touch_mismatch`: in the decision, on the risk topic, nothing drawn."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import envelope
from protocol import messages as m
from tests.agent.harness import Device, cli, wait
from tests.bridge.harness import Bridge
from tests.bridge.test_stepup_touch import SWIPER_SEED
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]
FLEET = "test"
ENROL = 2
# Every EV event is a step-up (the bottom of the scale), never a hold; the phone's answers are
# judged on looser thresholds, so its owner's sessions are allowed; two confirmations enrol.
EXTRA = (
    "\n[risk]\nkinds = { ev = { step_up_q = -128, hold_q = 127 }, "
    "phone = { step_up_q = 60, hold_q = 127 } }\n"
    f"\n[risk_signals]\ntouch_enrol = {ENROL}\ntouch_keep = 4\n"
)
SOS_COOLDOWN_S = 10  # the EV's provisioned `sos` rule fires at most every 10 s


def test_the_owner_confirms_by_touch_and_a_thief_with_the_phone_is_refused(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    url = private_broker.url
    bridge = Bridge.create(tmp_path / "bridge", url, extra=EXTRA)
    ev = bridge.device(tmp_path, "u-1-ev", "ev", url, "u-1", interval_s=0.5)
    phone = bridge.device(tmp_path, "u-1-phone", "phone", url, "u-1", interval_s=0.5,
                          seed=SWIPER_SEED)  # fmt: skip
    bridge.open_pool("u-1", 5_000_000)
    lock = threading.Lock()
    finals: list[m.Decision] = []  # the EV's emergencies, as settled
    alerts: list[m.Risk] = []

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        out = envelope.unseal(msg.payload, lambda kid: bridge.key.verify_key)[1]
        with lock:
            if isinstance(out, m.Decision) and out.action == "emergency_draw":
                if out.result != "step_up_pending":
                    finals.append(out)
            elif isinstance(out, m.Risk) and out.category == "alert":
                alerts.append(out)

    def emergency(n: int) -> m.Decision:
        """Raise the n-th emergency on the EV (0-based) and wait for its settled decision."""
        cli("emergency", "--config", str(ev.config), "--kind", "illness", "--amount-fen", "1000")
        assert wait(lambda: len(finals) > n, 40), (bridge.log(), finals)
        time.sleep(SOS_COOLDOWN_S + 0.5)
        return finals[n]

    bridge.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    client.username_pw_set("watcher", bridge.login("watcher"))
    client.on_message = on_message
    client.connect(private_broker.host, private_broker.port)
    client.subscribe([(f"cp/v1/{FLEET}/pool/+/decision", 1), (f"cp/v1/{FLEET}/risk/+", 1)])
    client.loop_start()
    devices: list[Device] = [phone, ev]
    try:
        # The phone first: a step-up command sent before it subscribed would be lost, and the
        # EV's first trigger (before any report: unscored) is stepped up at once.
        phone.start()
        assert wait(lambda: "is online" in phone.log(), 60), phone.log()
        ev.start()
        assert wait(lambda: len(bridge.query("SELECT DISTINCT device_id FROM events")) == 2, 60), (
            bridge.log()
        )
        time.sleep(2)
        owner = [emergency(n) for n in range(ENROL + 1)]  # enrol, enrol, matched
        phone.stop()  # stolen: the same key and data, another hand
        phone.config.write_text(
            phone.config.read_text().replace(
                "[sensors]\n", "[sensors]\nimpostor = true\nimpostor_confirms = true\n"
            )
        )
        phone.start()
        stolen = emergency(ENROL + 1)
    finally:
        client.loop_stop()
        for dev in devices:
            if dev.proc is not None:
                dev.stop()
        bridge.stop()

    for done in owner:
        assert (done.decision, done.result, done.amount_fen) == ("step_up", "ok", 1_000)
        assert done.reasons == ("step_up_confirmed",)
    assert (stolen.decision, stolen.result, stolen.reasons) == (
        "step_up", "touch_mismatch", ("touch_mismatch",),
    )  # fmt: skip
    touch_alerts = [a.device for a in alerts if a.reason == "touch_mismatch"]
    assert touch_alerts == ["u-1-phone"]
    assert "command stepup" in phone.log()
    # The EV's own mileage triggers are stepped up too, and confirmed by the owner: more
    # confirmations than the emergencies, the thief's the only refused one.
    statuses = [str(r[0]) for r in bridge.query("SELECT status FROM stepups ORDER BY opened_ms")]
    assert statuses[-1] == "touch_mismatch" and len(statuses) >= ENROL + 2
    assert set(statuses[:-1]) == {"confirmed"}
    outstanding = dict(bridge.query("SELECT user_id, outstanding_fen FROM pools"))
    assert outstanding == {"u-1": (ENROL + 1) * 1_000}  # the thief drew nothing
