"""Enrollment by claim on the board (issue 18 item 7): the protocol agent/claim.py speaks.

At boot, before the device runs (main.py): a board without device.key makes its Ed25519 key
from os.urandom and keeps it; with a claim token in config.json (claim.token, from `cloud-bridge
claims issue`) and no broker password yet, it logs in with the token's claim account, publishes
its self-signed enrollment carrying the token and reads the bridge's signed answer: its broker
credentials sealed to its key (sealedbox.py), written into config.json; then it runs normally.

    outcome = claim.ensure(hw, storage, cfg, log)    DONE, RETRY (try again later) or REFUSED

Safe to retry at any point: the key is written (whole, then renamed) before anything is sent,
so a power cut mid-enrollment claims again with the same key, and the bridge answers a repeat
of the same key and token with the same answer (cloud_bridge/claims.py AnswerAgain).
"""

import hashlib
import json
import os

import cbor
import commands
import config
import cose
import ed25519
import messages
import mqtt
from storage import write_atomic

DONE = "done"
RETRY = "retry"
REFUSED = "refused"
ACCOUNT_PREFIX = "claim-"  # protocol/names.py CLAIM_ACCOUNT_PREFIX
PREFIX = "cp/v1"
ANSWER_WAIT_MS = 30000
_TOKEN_TOKEN = 2  # protocol/claims.py ClaimToken: 2 token id, 4 fleet
_TOKEN_FLEET = 4


def needed(storage, cfg):
    """Whether the board must make its key or claim its credentials before it runs."""
    if storage.read(commands.KEY) is None:
        return True
    return bool(cfg["claim"]["token"]) and not cfg["mqtt"]["password"]


def device_seed(storage):
    """The board's key seed: the one kept, or a new one from os.urandom, kept before any use."""
    commands.read_key(storage, commands.KEY)  # ValueError for a malformed key file
    raw = storage.read(commands.KEY)
    if raw is not None:
        return bytes.fromhex(raw.strip().decode())
    seed = os.urandom(32)
    write_atomic(storage, commands.KEY, commands.key_text(seed))
    return seed


def claim_password(token):
    """The claim account's password (protocol/claims.py claim_password)."""
    return hashlib.sha256(b"cp-claim-account\x00" + token).digest().hex()


def ensure(hw, storage, cfg, log):
    """Make the key, then claim if the config holds a token and no password: DONE when the
    device may run, RETRY after a failure worth retrying, REFUSED when the bridge said no."""
    seed = device_seed(storage)
    if not needed(storage, cfg):
        return DONE
    if not cfg["claim"]["token"]:
        log("claim: no device.key was provisioned and config.json has no claim.token")
        return REFUSED
    key = ed25519.SigningKey(seed)
    bridge_pub = bytes.fromhex(cfg["bridge"]["public_key"])
    bridge_kid = cose.kid_for(bridge_pub)

    def resolve(kid):
        return bridge_pub if bytes(kid) == bridge_kid else None

    token = bytes.fromhex(cfg["claim"]["token"])
    try:
        payload, _kid = cose.verify1(token, resolve)
        doc = cbor.decode(payload)
        account = ACCOUNT_PREFIX + doc[_TOKEN_TOKEN]
        fleet = doc[_TOKEN_FLEET]
    except Exception as exc:  # not this bridge's token: retrying cannot help
        log("claim: claim.token is not a token of this bridge (%s)" % (exc,))
        return REFUSED
    dev = cfg["device"]
    fields = {
        "sender": dev["id"], "seq": 1, "boot": 0, "ts_ms": hw.wall_ms(), "fleet": fleet,
        "device_kind": dev["kind"], "public_key": key.public,
        "baseline": dict(enumerate(cfg["baseline"])), "claim": token,
    }  # fmt: skip
    enrollment = messages.seal(messages.ENROLLMENT, fields, key)
    base = PREFIX + "/" + fleet + "/" + account + "/"
    got = []
    mq = cfg["mqtt"]
    client = mqtt.MQTTClient(account, lambda: hw.open_socket(mq["host"], mq["port"]),
                             keepalive_s=mq["keepalive_s"], clock=hw.ticks_ms)  # fmt: skip
    client.on_message = lambda topic, data, _retain: got.append(bytes(data))
    try:
        client.connect(clean_session=True, username=account, password=claim_password(token))
        client.subscribe(base + "claim_answer", 1)
        client.publish(base + "claim", enrollment, 1)
        start = hw.ticks_ms()
        while not got and hw.ticks_ms() - start < ANSWER_WAIT_MS:
            client.poll(200)
    except (OSError, mqtt.MQTTError) as exc:
        log("claim: broker: %s" % (exc,))
        return RETRY
    finally:
        try:
            client.disconnect()
        except OSError:
            pass
    if not got:
        log("claim: no answer in %d s" % (ANSWER_WAIT_MS // 1000))
        return RETRY
    try:
        answer = messages.open_(got[0], resolve)
    except Exception as exc:
        log("claim: answer dropped: %s" % (exc,))
        return RETRY
    f = answer.fields
    if answer.kind != messages.CLAIM_ANSWER or f["device"] != dev["id"]:
        log("claim: the answer is not for this device")
        return RETRY
    if f["result"] != "enrolled":
        log("claim: refused (%s)" % f["reason"])
        return REFUSED
    import sealedbox  # only a board that claims loads it (the heap is small)

    try:
        creds = cbor.decode(sealedbox.open_sealed(f["sealed"], seed, key.public))
        username, password = creds[1], creds[2]
    except Exception as exc:
        log("claim: credentials not readable: %s" % (exc,))
        return RETRY
    doc = json.loads(storage.read(config.FILE))
    doc.setdefault("mqtt", {}).update({"username": username, "password": password})
    write_atomic(storage, config.FILE, json.dumps(doc))
    log("claim: enrolled as %s" % username)
    return DONE
