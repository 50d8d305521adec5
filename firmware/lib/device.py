"""The device: sense, fingerprint, score, store, and forward with the Linux agent's rules.

One cooperative loop (no threads on the ESP32): `step()` keeps Wi-Fi and MQTT up (jittered
backoff), handles what the broker sends (acks, the bridge state, commands: all verified against
the bridge key), lets the send window (window.py, the agent's own file) publish from the flash
outbox, makes a report every `report.interval_s` and a trigger when the emergency button is
pressed, and feeds the watchdog only when something moved forward.

Every message is committed to the outbox before it may be sent and numbered when first sent;
a session is announced with a signed birth (seq 2 * session) and a signed last will (death,
2 * session + 1), as agent/link.py does.

    dev = Device(hw, storage)    hw: see Hardware in main.py; storage: storage.FileStorage
    dev.step()                   once per loop
"""

import gc
import hashlib
import sys
import time

import backoff
import cose
import counters
import fingerprint
import held
import messages
import model_store
import mpu6050
import mqtt
import reconnect
import sender
import timebase
import updates
import window
import wifi
from errors import ProtocolError
from monoclock import MonoClock
from outbox import Outbox, OutboxFull
from storage import write_atomic
from watchdog import WDT_TIMEOUT_MS, Watchdog

VERSION = "fw-0.2.0"
PREFIX = "cp/v1"
REPLAY_WINDOW = 64  # protocol/replay.py WINDOW: the bridge's replay window
PRIORITY_REPORT = 0
PRIORITY_REPLY = 100
TIME_FLOOR = "time_floor"
RING_LINES = 20


def unload(*names):
    """Drop modules the device needs rarely (commands, config, ota, claim): their bytecode
    leaves the heap at the next collection, and the next import loads them again."""
    for name in names:
        sys.modules.pop(name, None)


class Device:
    def __init__(self, hw, storage):
        self.hw = hw
        self.mono = MonoClock(hw.ticks_ms)
        self.storage = storage
        self._hw_log = hw.log
        self.ring = []  # the newest log lines, for a diag command
        self.current_seq = 0
        import commands  # at boot, a connect and a command only: unloaded after use
        import config

        commands.settle_rotation(storage)
        self.cfg = config.load(storage)
        # here and below: boot's garbage goes as it is made, so that what lives on packs low
        # in the heap and leaves the rest in one piece (the soak ran in 4-8 KB less)
        gc.collect()
        raw_cfg = storage.read(config.FILE) or b""
        self.config_sha256 = hashlib.sha256(raw_cfg).digest()
        self.key = commands.read_key(storage, commands.KEY)
        if self.key is None:
            raise config.ConfigError("device.key is missing; provision the device")
        self.kid = cose.kid_for(self.key.public)
        bridge_pub = bytes.fromhex(self.cfg["bridge"]["public_key"])
        self._bridge = (cose.kid_for(bridge_pub), bridge_pub)
        dev = self.cfg["device"]
        self.device_id = dev["id"]
        base = PREFIX + "/" + dev["fleet"] + "/" + self.device_id + "/"
        self.topics = {
            name: base + name
            for name in ("birth", "death", "report", "trigger", "enroll", "diag")
        }
        self.filters = (base + "ack", base + "cmd/+", PREFIX + "/" + dev["fleet"] + "/bridge/state")
        # numbers that never repeat: a boot counter and session numbers, reserved on flash
        self.boot = counters.Counter(storage, "boot", block=1).take()
        self._sessions = counters.Counter(storage, "session", block=4)
        self._session = None  # reserved for the next connection
        self.session = 0
        self.box = Outbox(storage, self.cfg["outbox"]["max_messages"], log=self.log)
        gc.collect()
        image = hw.image_version()  # a simulated image names its version (the unix port)
        self.version = "fw-" + image if image else VERSION
        self.updates = updates.Updates(storage, hw, bridge_pub, self.version[3:], self.log)
        mq = self.cfg["mqtt"]
        self.window = window.SendWindow(REPLAY_WINDOW, mq["inflight_max"], mq["ack_timeout_s"] * 1000)
        self.model = model_store.current(storage, self.log)
        gc.collect()
        self.imu = mpu6050.MPU6050(hw.i2c, self.cfg["imu"]["i2c_address"])
        self.imu.configure(self.cfg["imu"]["sample_hz"])
        rand = hw.getrandbits
        self.wifi = wifi.Wifi(
            hw.wlan, self.cfg["wifi"]["ssid"], self.cfg["wifi"]["password"],
            backoff.Backoff(rand, mq["backoff_base_ms"], mq["backoff_cap_ms"]),
        )  # fmt: skip
        self.client = mqtt.MQTTClient(
            self.device_id, lambda: hw.open_socket(mq["host"], mq["port"]),
            keepalive_s=mq["keepalive_s"], clock=hw.ticks_ms,
        )  # fmt: skip
        self.client.on_message = self._on_message
        self.client.on_puback = self.window.on_puback
        self.reconnector = reconnect.Reconnector(
            self.client, backoff.Backoff(rand, mq["backoff_base_ms"], mq["backoff_cap_ms"]),
            connect_args={}, on_connect=self._on_connect,
        )  # fmt: skip
        self.dog = Watchdog(hw.wdt, hw.ticks_ms(), WDT_TIMEOUT_MS // 2)
        # verified commands not yet answered, (name, seq, args, expires), and the seqs seen
        self._cmd_seen, self.pending = held.load(storage, self.log)
        self._settle_answered()
        floor = storage.read(TIME_FLOOR)
        self.time = timebase.start(int(floor) if floor else 0)
        self._boot_first_seq = self.box.next_seq()  # older acks do not set the clock
        self.dropped_inbound = 0
        self.reports = 0
        self.skipped = 0  # reports not made for want of heap
        self.last = None  # (risk_pm, input_q, fingerprint) of the last good capture
        self.imu_health = mpu6050.Health()  # read errors and a frozen part, for the telemetry
        self._next_report = hw.ticks_ms()
        self._last_fired = None
        self.log("boot %d: %s %s, kid %s, outbox %d (next seq %d)" % (
            self.boot, self.device_id, self.version, self.kid.hex(), len(self.box), self.box.next_seq()))
        unload("commands", "config")
        gc.collect()

    # ---- helpers ---------------------------------------------------------------------------

    def log(self, line):
        """Log to the console and keep the line in a small ring (RING_LINES)."""
        self._hw_log(line)
        self.ring.append(line[:120])
        if len(self.ring) > RING_LINES:
            self.ring.pop(0)

    def wall_ms(self):
        """Never below the persisted floor; the bridge's time (from its acks) once known."""
        return timebase.wall(self.time, self.hw.wall_ms())

    def _keep_time(self):
        due = timebase.floor_due(self.time, self.hw.wall_ms())
        if due:
            write_atomic(self.storage, TIME_FLOOR, str(due))
            self.time = timebase.floor_written(self.time, due)

    def random_bytes(self, n):
        return bytes(self.hw.getrandbits(8) for _ in range(n))

    def fetch(self, url, path, max_bytes):
        return self.hw.fetch(url, path, max_bytes)

    def _head(self, seq):
        return {"sender": self.device_id, "seq": seq, "boot": self.boot, "ts_ms": self.wall_ms()}

    def _seal(self, kind, fields):
        return messages.seal(kind, fields, self.key)

    # ---- sensing and storing ----------------------------------------------------------------

    def assess(self, model=None):
        """Capture a window, fingerprint it, score it: (risk_pm, input_q, fingerprint).
        A failed or frozen window is counted (mpu6050.Health) and the last good assessment is
        given again, flagged stale by imu.ok = 0; with none yet (or another model asked
        for) ImuError: nothing to score. The next call reads the bus again."""
        model = model or self.model
        imu = self.cfg["imu"]
        hw = self.hw
        try:
            cols, ts, temp_mc = self.imu.capture(
                imu["window_samples"], imu["sample_hz"], hw.imu_ticks_us, hw.imu_sleep_us
            )
            fault = mpu6050.FAULT_STUCK if mpu6050.stuck(cols) else None
        except OSError as exc:
            fault, cols = mpu6050.FAULT_READ, None
            self.log("IMU read failed: %s" % (exc,))
        self.imu_health.note(fault)
        if fault is not None:
            cols = ts = None
            if self.last is None or model is not self.model:
                raise mpu6050.ImuError("no good IMU window (%s)" % fault)
            return self.last
        fp = fingerprint.extract(
            cols, ts, imu["sample_hz"], mpu6050.ACCEL_LSB_PER_G, mpu6050.GYRO_LSB_PER_DPS, temp_mc
        )
        cols = ts = None
        x = fingerprint.model_input(fp, self.cfg["baseline"], model.card)
        _q, risk = model.score(x)
        self.last = (risk, x, fp)
        return self.last

    def self_test(self, model):
        self.assess(model)

    def report(self, cmd_seq=0, cmd_result=""):
        """Capture, fingerprint, score now; commit the report (numbered when first sent)."""
        risk, x, fp = self.assess()
        fields = self._head(0)
        fields.update({
            "model_id": self.model.model_id,
            # the bridge finds the model by id and prefix: 24 bytes less in every report
            "model_sha256": self.model.model_sha256[:messages.MODEL_SHA256_PREFIX],
            "risk_pm": risk,
            "features": x,
            "fingerprint": dict(enumerate(fp)),
            "mono_ms": self.mono_ms(),
            "telemetry": self.imu_health.telemetry(),
            "cmd_seq": cmd_seq,
            "cmd_result": cmd_result[:64],
            "time_quality": self.time[timebase.QUALITY],
        })
        payload = messages.encode(messages.REPORT, fields)
        try:
            self.box.put(payload, PRIORITY_REPLY if cmd_seq else PRIORITY_REPORT)
        except OutboxFull:
            self.log("outbox full: report dropped")
            return
        self.reports += 1

    def emergency(self, now_ms, amount_fen=0):
        """The emergency button: a trigger, at most once per cool-down (agent/triggers.py's
        emergency rule with an explicit event)."""
        rule = self.cfg["emergency"]
        last = self._last_fired
        if last is not None and time.ticks_diff(now_ms, last) < rule["cooldown_s"] * 1000:
            return False
        try:
            risk = self.last[0] if self.last else self.assess()[0]
        except mpu6050.ImuError as exc:  # no window ever: the press is tried again next pass
            self.log("emergency waits for the IMU: %s" % (exc,))
            return False
        self._last_fired = now_ms
        fields = self._head(0)
        fields.update({
            "model_id": self.model.model_id,
            "model_sha256": self.model.model_sha256,
            "risk_pm": risk,
            "mono_ms": self.mono_ms(),
            "rule": "sos",
            "priority": rule["priority"],
            "trigger": "emergency",
            "body": {"emergency": rule["emergency"], "source": "explicit", "amount_fen": amount_fen},
        })
        self.box.put(messages.encode(messages.TRIGGER, fields), rule["priority"])
        self.log("trigger sos (emergency) stored")
        return True

    # ---- the link ---------------------------------------------------------------------------

    def _will(self):
        session = self._session
        if session is None:
            session = self._session = self._sessions.take()
        fields = self._head(2 * session + 1)
        fields["reason"] = "lost"
        return (self.topics["death"], self._seal(messages.DEATH, fields), 1, False)

    def _on_connect(self, _session_present):
        import commands

        session = self._session or 0  # reserved by _will() for this connection
        self._session = None
        self.session = session
        for f in self.filters:
            self.client.subscribe(f, 1)
        fields = self._head(2 * session)
        fields.update({
            "agent_version": self.version,
            "model_id": self.model.model_id,
            "model_sha256": self.model.model_sha256,
            "config_sha256": self.config_sha256,
            "device_kind": self.cfg["device"]["kind"],
            "backlog": len(self.box),
            "resume_seq": self.box.resume_seq(),
            "config_version": commands.config_version(self.storage),
        })
        self.client.publish(self.topics["birth"], self._seal(messages.BIRTH, fields), 1)
        sender.connected(self.window, self.box, self.hw.ticks_ms())
        pending = self.storage.read(commands.ROTATION)
        if pending is not None:  # a rotation still waiting: the bridge may have missed it
            self.client.publish(self.topics["enroll"], pending, 1)
        unload("commands")
        self.log("connected (session %d), resuming after seq %d" % (session, self.window.acked))

    def _publish(self, entry):
        envelope = cose.sign1(messages.with_seq(entry.payload, entry.seq), self.key, self.kid)
        kind = messages.kind_of(entry.payload)
        topic = self.topics["trigger" if kind == messages.TRIGGER else "report"]
        return self.client.publish(topic, envelope, 1)

    def _resolve(self, kid):
        return self._bridge[1] if bytes(kid) == self._bridge[0] else None

    def mono_ms(self):
        return self.mono.read()

    def _on_message(self, topic, payload, _retain):
        if len(payload) > cose.MAX_ENVELOPE_BYTES:
            self.dropped_inbound += 1
            return
        try:
            msg = messages.open_(bytes(payload), self._resolve)
        except ProtocolError as exc:
            self.dropped_inbound += 1
            self.log("dropped a message on %s: %s" % (topic, exc))
            return
        f = msg.fields
        if msg.kind == messages.ACK and topic == self.filters[0]:
            if f["device"] == self.device_id:
                self.window.on_ack(f["ack_seq"], self.hw.ticks_ms())
                if timebase.answers_this_boot(f["ack_seq"], self._boot_first_seq):
                    self.time = timebase.on_bridge_time(self.time, f["ts_ms"], self.hw.wall_ms())
                self._trial_acked(f["ack_seq"])
                return
        elif msg.kind == messages.BRIDGE_STATE and topic == self.filters[2]:
            # ordered by (boot, seq): a replayed older "offline" or last will is not taken
            now = self.hw.ticks_ms()
            if self.window.on_bridge_state(f["sender"], f["boot"], f["seq"], f["online"], now):
                return
        elif msg.kind == messages.COMMAND and topic == self.filters[0][:-3] + "cmd/" + f["command"]:
            if _retain:  # applied once when sent; never again from what the broker keeps
                self.log("retained command %s seq %d ignored" % (f["command"], f["seq"]))
            elif f["device"] == self.device_id and self._take_command(f):
                return
        self.dropped_inbound += 1

    def _take_command(self, f):
        """Keep a fresh command: on flash with its seq marked seen, in one atomic write, before
        the client acknowledges the PUBLISH (a cut before it: the broker sends it again)."""
        # replay protection: a command's seq must exceed the last one taken from that bridge
        # instance (stricter than the agent's 64-wide window: the bridge sends in order)
        sender_id, seq = f["sender"], f["seq"]
        if seq <= self._cmd_seen.get(sender_id, 0):
            return False
        seen = dict(self._cmd_seen)
        seen[sender_id] = seq
        pending = self.pending + [(f["command"], seq, f["args"], f["expires_ms"])]
        held.save(self.storage, seen, pending)
        self._cmd_seen, self.pending = seen, pending
        return True

    def _settle_answered(self):
        # a cut between a command's answer reaching the outbox and the command leaving the
        # record: the answer is there, so the command is not run (nor answered) again
        if not self.pending:
            return
        done = held.answered(self.box.payloads(PRIORITY_REPLY))
        left = [cmd for cmd in self.pending if cmd[1] not in done]
        if len(left) != len(self.pending):
            self.log("%d command(s) answered before the reset" % (len(self.pending) - len(left)))
            self._forget(left)

    def _forget(self, left):
        held.save(self.storage, self._cmd_seen, left)
        self.pending = left

    def _run_commands(self):
        if not self.pending:
            return
        import commands

        apply, keep, refused = held.triage(self.pending, self.wall_ms(), timebase.trusted(self.time))
        for verdict, cmd in refused:
            self.dropped_inbound += 1
            self.log("command %s (seq %d) not applied: %s" % (cmd[0], cmd[1], verdict))
        if refused:
            self._forget(apply + keep)
        for cmd in apply:
            self._apply(commands, cmd)
            # off flash only now that its answer is in the outbox (a cut before: settled at boot)
            self._forget([c for c in self.pending if c is not cmd])
        self.updates.settle()  # a refused update leaves ota.py unused
        unload("commands", "config", "http_get")

    def _apply(self, commands, cmd):
        name, seq, args, _expires = cmd
        self.current_seq = seq  # a diag answer carries the command's seq
        result, effects = commands.handle(self, name, args)
        for what, value in effects:
            if what == "config":
                self.cfg = value
                self.box.max_messages = value["outbox"]["max_messages"]
            elif what == "key":
                self.key = value
                self.kid = cose.kid_for(value.public)
            elif what == "model":
                self.model = value
            elif what == "enroll" and self.client.connected:
                self.client.publish(self.topics["enroll"], value, 1)
            elif what == "diag" and self.client.connected:
                self.client.publish(self.topics["diag"], value, 1)
        self.log("command %s (seq %d): %s" % (name, seq, result))
        try:
            self.report(cmd_seq=seq, cmd_result=result)
        except (MemoryError, mpu6050.ImuError) as exc:  # applied, answered never: not run twice
            self.skipped += 1
            self.log("command %s (seq %d): no answer: %s" % (name, seq, exc))

    def _link(self, now):
        """Keep the link up and let the window work; False while disconnected."""
        if not self.wifi.step(now):
            return False
        if not self.client.connected:
            self.window.on_disconnected()
            mq = self.cfg["mqtt"]
            self.reconnector.connect_args = {
                "will": self._will(),
                "username": mq["username"] or None,  # the broker binds the client id to it
                "password": mq["password"] or None,
            }
            attempts = self.reconnector.attempts
            up = self.reconnector.step(now)
            if self.reconnector.attempts != attempts and not up:
                self.log("connect failed (%s)" % (self.reconnector.last_error,))
            return up
        acked = self.window.acked
        try:
            n = 0
            while n < 16 and self.client.poll(0):
                n += 1
            self.client.tick(self.hw.ticks_ms())  # a silent broker raises here (keepalive)
            sender.drain(self.window, self.box, self._publish)
            sender.tick(self.window, self.box, self.hw.ticks_ms())
            if self.window.acked != acked:
                self.dog.drained(now)
        except (OSError, mqtt.MQTTError) as exc:
            self.window.on_disconnected()
            self.reconnector.lost(self.hw.ticks_ms(), exc)
            self.log("link lost (%s)" % (exc,))
            return False
        return True

    # ---- the loop ---------------------------------------------------------------------------

    def step(self):
        """One pass of the loop; returns how long the caller may sleep (ms)."""
        hw = self.hw
        now = hw.ticks_ms()
        up = self._link(now)
        self._keep_time()
        # The link came back from its work (an attempt, a backoff wait, a poll): an outage is
        # not a hang. A call that hangs never gets here and the WDT resets the board.
        self.dog.beat(now)
        self._run_commands()
        if self.updates.step(now):  # an update in place, or a trial without an ack
            self.shutdown()
            self.hw.reset()
        if hw.button():
            self.emergency(now)
        interval = self.cfg["report"]["interval_s"] * 1000
        if time.ticks_diff(self._next_report, time.ticks_add(now, interval)) > 0:
            self._next_report = time.ticks_add(now, interval)  # a config command shortened it
        if time.ticks_diff(now, self._next_report) >= 0:
            self._next_report = time.ticks_add(now, interval)
            try:
                self.report()
            except MemoryError:  # a fragmented heap: this report is skipped, the next one made
                self.skipped += 1
                self.log("out of memory: report skipped")
            except mpu6050.ImuError as exc:  # no good window yet: nothing to score
                self.skipped += 1
                self.log("report skipped: %s" % (exc,))
            gc.collect()
        self.dog.sensed(now)  # the report, when due, was made (an I2C hang never gets here)
        self.dog.check(now, len(self.box), up and self.window.bridge_online)
        hw.led(up and self.window.bridge_online)
        return 5 if up else 50

    def _trial_acked(self, ack_seq):
        self.updates.on_ack(ack_seq)

    def shutdown(self):
        """A clean death and DISCONNECT (the broker then drops the will)."""
        if self.client.connected:
            fields = self._head(2 * self.session + 1)
            fields["reason"] = "shutdown"
            try:
                self.client.publish(self.topics["death"], self._seal(messages.DEATH, fields), 1)
                self.client.disconnect()
            except OSError:
                pass
