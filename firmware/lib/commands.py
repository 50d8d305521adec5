"""Commands from the bridge, already verified (bridge key) and replay-checked by device.py: the
device's part of agent/commands.py, with its semantics and answers.

- ping: "ok" (the device answers with a fresh, scored report).
- config: dotted keys from config.REMOTE_KEYS, validated like config.json and kept across
  resets in overrides.json; "refused: ..." for any other key. With `config_version` it is the
  bridge's whole desired configuration of that version: it replaces the overrides, its version
  is kept (births report it) and an older version is refused.
- rotate: without arguments, make the next key (device.key.pending), seal an enrollment for it
  with the current key, keep it in rotation.cbor (sent again on every connect) and answer
  "pending"; with `confirm_kid` (the bridge registered it), record the new key in key.json,
  promote it and answer "ok". Messages are signed when sent, so nothing stored needs re-signing.
- model: fetch a model card (the module tools/model_card.py generates) from `url`, check its
  SHA-256 against the signed `sha256`, load it and score a capture with it (self-test), then
  point model.json at it; a card that fails leaves the old model in place
  ("model_rejected: ..."), and one that fails to load at boot is rolled back (model_store.py).
- update: a firmware manifest signed by the bridge (ota.py): "pending" while the inactive
  partition is written, then a reset into it; valid only once a report of it was acked.

    outcome = handle(dev, name, args)   -> (result text, effects): effects are ("config", cfg),
                                           ("key", SigningKey), ("model", Model), ("enroll", data)
"""

import json

import cose
import ed25519
import messages
import model_store
from storage import write_atomic

KEY = "device.key"
PENDING = "device.key.pending"
KEY_INFO = "key.json"
ROTATION = "rotation.cbor"
CONFIG_VERSION = "config_version"
CONFIG_VERSION_ARG = "config_version"  # protocol/messages.py CONFIG_VERSION_ARG


def handle(dev, name, args):
    """(result, effects) of command `name`; never raises."""
    try:
        if name == "ping":
            return "ok", ()
        if name == "config":
            return _config(dev, args)
        if name == "rotate":
            return _rotate(dev, args)
        if name == "model":
            return _model(dev, args)
        if name == "diag":
            return _diag(dev, args)
        if name == "update":
            manifest = args.get("manifest")
            if not isinstance(manifest, bytes):
                return "refused: argument manifest missing or mistyped", ()
            return dev.updates.machine().offer(manifest), ()
        return "refused: unknown command %s" % name, ()
    except Exception as exc:  # a command must never take the device down
        return ("error: %s" % type(exc).__name__)[:64], ()


def _config(dev, args):
    import config  # loaded for this command only (device.py unloads it again)

    args = dict(args)
    version = args.pop(CONFIG_VERSION_ARG, None)
    for key in args:
        if key not in config.REMOTE_KEYS:
            return "refused: %s cannot be set remotely" % key, ()
    if version is None:  # a change merged into the overrides
        overrides = config.load_overrides(dev.storage)
        overrides.update(args)
    else:  # the bridge's whole desired configuration of that version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            return "refused: %s must be a positive integer" % CONFIG_VERSION_ARG, ()
        applied = config_version(dev.storage)
        if version < applied:
            return "refused: version %d is older than %d applied" % (version, applied), ()
        overrides = args
    try:
        cfg = config.with_overrides(dev.cfg, overrides)
    except config.ConfigError as exc:
        return ("error: %s" % exc)[:64], ()
    config.save_overrides(dev.storage, overrides)
    if version is not None:
        # After the overrides: a reset in between reports the older version, and the bridge
        # sends the same desired state again (applying it twice changes nothing).
        write_atomic(dev.storage, CONFIG_VERSION, str(version))
    return "ok", (("config", cfg),)


CRASH_FILE = "crash.json"  # main.py writes it


def _diag(dev, args):
    """A signed Diag (on the diag channel): the log ring, main.py's crash record, uptime and
    figures; the oldest log lines dropped until it fits in MAX_DIAG_BYTES."""
    import gc

    lines = args.get("lines", 20)
    if not isinstance(lines, int) or isinstance(lines, bool) or not 0 <= lines <= 200:
        return "refused: lines must be an integer from 0 to 200", ()
    crash, figures = "", {"outbox": len(dev.box), "dropped_inbound": dev.dropped_inbound,
                          "reports": dev.reports, "skipped": dev.skipped,
                          "mem_free": gc.mem_free()}  # fmt: skip
    raw = dev.storage.read(CRASH_FILE)
    if raw:
        try:
            doc = json.loads(raw)
            crash = str(doc.get("reason", ""))[:200]
            if isinstance(doc.get("reset_cause"), int):
                figures["reset_cause"] = doc["reset_cause"]
        except ValueError:
            crash = "crash.json unreadable"
    fields = dev._head(dev.current_seq)
    fields.update({"uptime_s": dev.mono_ms() // 1000, "crash": crash, "figures": figures})
    log = dev.ring[-lines:] if lines else []
    # A first cut by length (few allocations on a small heap), then exactly by encoding.
    while log and sum(len(line) + 3 for line in log) > messages.MAX_DIAG_BYTES - 512:
        log = log[1:]
    while True:
        fields["log"] = log
        payload = messages.encode(messages.DIAG, fields)
        if len(payload) <= messages.MAX_DIAG_BYTES or not log:
            break
        log = log[1:]
    return "ok", (("diag", cose.sign1(payload, dev.key)),)


def config_version(storage):
    """The version of the bridge's desired configuration applied (0: none); births carry it."""
    raw = storage.read(CONFIG_VERSION)
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def read_key(storage, name):
    """A key file: the seed as 64 hex digits (and a newline), as the Linux agent's; None if
    absent."""
    raw = storage.read(name)
    if raw is None:
        return None
    text = raw.strip()
    if len(text) != 64:
        raise ValueError("key file %s must hold 64 hex digits" % name)
    return ed25519.SigningKey(bytes.fromhex(text.decode()))


def key_text(seed):
    return (seed.hex() + "\n").encode()


def key_info(storage):
    raw = storage.read(KEY_INFO)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _enrollment(dev, key, generation, prev_kid):
    cfg = dev.cfg
    return {
        "sender": cfg["device"]["id"],
        "seq": generation,
        "boot": dev.boot,
        "ts_ms": dev.wall_ms(),
        "fleet": cfg["device"]["fleet"],
        "device_kind": cfg["device"]["kind"],
        "public_key": key.public,
        "baseline": dict(enumerate(cfg["baseline"])),
        "identity": {},
        "prev_kid": prev_kid,
    }


def _rotate(dev, args):
    storage = dev.storage
    generation = key_info(storage).get("generation", 1) + 1
    old = dev.key
    confirm = args.get("confirm_kid")
    new = read_key(storage, PENDING)
    if confirm is not None:
        if new is None and cose.kid_for(old.public) == bytes(confirm):
            return "ok", ()  # run again after a cut that lost its answer (held.py): promoted
        if new is None:
            return "refused: confirm_kid is not the pending key", ()
        if cose.kid_for(new.public) != bytes(confirm):
            return "refused: confirm_kid is not the pending key", ()
        # crash-safe order: the record first (boot finishes a promotion it names), then the key
        write_atomic(storage, KEY_INFO, json.dumps(
            {"generation": generation, "public_key": new.public.hex()}))
        storage.rename(PENDING, KEY)
        storage.remove(ROTATION)
        return "ok", (("key", new),)
    if new is None:
        seed = dev.random_bytes(32)
        write_atomic(storage, PENDING, key_text(seed))
        new = ed25519.SigningKey(seed)
    fields = _enrollment(dev, new, generation, cose.kid_for(old.public))
    data = messages.seal(messages.ENROLLMENT, fields, old)
    write_atomic(storage, ROTATION, data)
    return "pending", (("enroll", data),)


def settle_rotation(storage):
    """At boot: finish a promotion a reset interrupted (key.json names the pending key)."""
    info = key_info(storage)
    pending = read_key(storage, PENDING)
    if pending is None or "public_key" not in info:
        return
    if pending.public.hex() == info["public_key"]:
        storage.rename(PENDING, KEY)
        storage.remove(ROTATION)


def _model(dev, args):
    for name, kind in (("model_id", str), ("sha256", bytes), ("url", str)):
        if not isinstance(args.get(name), kind):
            return "refused: argument %s missing or mistyped" % name, ()
    name = model_store.card_name(args["sha256"])
    tmp = name + ".tmp"
    try:
        digest = dev.fetch(args["url"], dev.storage.path(tmp), model_store.MAX_CARD_BYTES)
    except Exception as exc:
        dev.storage.remove(tmp)
        return ("model_rejected: fetch failed: %s" % exc)[:64], ()
    if digest != args["sha256"]:
        dev.storage.remove(tmp)
        return "model_rejected: sha256 mismatch", ()
    dev.storage.rename(tmp, name)
    try:
        model = model_store.load_card(dev.storage, name)
        dev.self_test(model)
    except Exception as exc:
        dev.storage.remove(name)
        return ("model_rejected: %s" % exc)[:64], ()
    model_store.select(dev.storage, name)
    return "ok", (("model", model),)
