"""edge-agent provision: a device's key, broker secret, signed enrollment record and starter
configuration (agent.toml for Linux, the board's files for an ESP32)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent import keys
from agent.errors import AgentError
from protocol import mqtt_password
from protocol.names import MCU_KIND


def provision(args: argparse.Namespace) -> int:
    import keyfiles
    from agent import features
    from agent import provision_esp32 as esp32
    from agent.identity import host_identity
    from agent.sensors.factory import open_source
    from protocol import envelope
    from protocol import messages as m
    from protocol.topics import validate_device_id, validate_id

    try:
        validate_device_id(args.device_id)
        validate_id(args.fleet, "fleet")
    except Exception as exc:
        raise AgentError(str(exc)) from exc
    if (args.target == "esp32") != (args.kind == MCU_KIND):
        raise AgentError(
            f"--kind {args.kind} with --target {args.target}: an ESP32 board is --kind "
            f"{MCU_KIND} --target esp32; the Linux kinds are {', '.join(config_mod.DEVICE_KINDS)}"
        )
    if args.target == "esp32" and args.source != "sim":
        raise AgentError("--target esp32 enrolls the simulated MPU-6050 only: --source sim")
    out: Path = args.out
    key_path = out / "device.key"
    key = keys.generate(key_path, overwrite=args.force)
    # The broker password: the secret stays here (0600), only its hash goes into the record.
    secret = mqtt_password.new_secret()
    pass_path = out / mqtt_password.SECRET_FILE
    keyfiles.write_private(pass_path, (secret + "\n").encode(), overwrite=True)
    seed = args.seed if args.seed >= 0 else config_mod._seed_from(args.device_id)
    if args.target == "esp32":
        seed %= esp32.SIM_SEEDS
        baseline = esp32.baseline_from_sim(seed, args.sessions)
    else:
        source = open_source(args.source, args.kind, seed=seed, data_dir=out)
        sessions = (
            [source.capture() for _ in range(args.sessions)]
            if not hasattr(source, "enrollment")
            else source.enrollment(args.sessions)
        )
        baseline = features.enroll([features.extract(c) for c in sessions])
    identity = (
        {"serial": f"sim-{seed:016x}", "model": f"sim-{args.kind}"}
        if (args.source == "sim")
        else host_identity()
    )
    record = m.Enrollment(
        sender=args.device_id,
        seq=1,
        boot=0,
        ts_ms=time.time_ns() // 1_000_000,
        fleet=args.fleet,
        device_kind=args.kind,
        public_key=bytes(key.verify_key),
        baseline=baseline.to_wire(),
        identity=identity,
        mqtt_hash=mqtt_password.hash_password(secret),
    )
    record_path = out / "enrollment.cbor"
    record_path.write_bytes(envelope.seal(record, key))
    config_path = None
    board: dict[str, str] = {}
    if args.target == "esp32":
        if not args.bridge_key:
            raise AgentError("--target esp32 needs --bridge-key (it goes into config.json)")
        cfg = esp32.board_config(
            args.device_id, args.fleet, args.bridge_key, args.mqtt_url, baseline, seed, secret
        )
        board = esp32.write_board(out, key, cfg)
    elif args.bridge_key:
        config_path = out / "agent.toml"
        config_path.write_text(starter_config(args, seed))
    result: dict[str, Any] = {
        "device_id": args.device_id,
        "fleet": args.fleet,
        "kind": args.kind,
        "public_key": bytes(key.verify_key).hex(),
        "kid": keys.kid(key).hex(),
        "enrollment": str(record_path),
        "key_file": str(key_path),
        "mqtt_password_file": str(pass_path),
        "config": str(config_path) if config_path else None,
        "board": board,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"provisioned {args.device_id} ({args.kind}) in fleet {args.fleet}")
        print(f"  key        {key_path} (kid {result['kid']})")
        print(f"  broker     {pass_path} (MQTT username {args.device_id})")
        print(
            f"  enrollment {record_path}  -> cloud-bridge devices enroll {record_path} --user USER"
        )
        if config_path:
            print(f"  config     {config_path}  -> edge-agent run --config {config_path}")
        if board:
            print(f"  board      {out / 'board'}  -> tools/flash --board {out / 'board'}")
    return 0


def starter_config(args: argparse.Namespace, seed: int) -> str:
    rules = {
        "fridge": '[[triggers.rule]]\nname = "milk-low"\nkind = "restock"\nitem = "milk"\n'
        "threshold_pct = 25\nfull_cost_fen = 2590\npriority = 5\ncooldown_s = 600\n",
        "wearable": '[[triggers.rule]]\nname = "steps-7d"\nkind = "health_streak"\n'
        "goal_steps = 8000\nstreak_days = 7\npriority = 3\ncooldown_s = 0\n\n"
        '[[triggers.rule]]\nname = "fall"\nkind = "emergency"\nemergency = "illness"\n'
        "fall_detection = true\npriority = 255\ncooldown_s = 60\n",
        "ev": '[[triggers.rule]]\nname = "ev-tier"\nkind = "ev_tier"\n'
        "tiers_km = [500, 1500, 3000]\npriority = 2\ncooldown_s = 0\n",
        "phone": "",
    }[args.kind]
    sos = (
        ""
        if args.kind == "wearable"
        else (
            '\n[[triggers.rule]]\nname = "sos"\nkind = "emergency"\nemergency = "illness"\n'
            "priority = 255\ncooldown_s = 10\n"
        )
    )
    return (
        f'[device]\nid = "{args.device_id}"\nfleet = "{args.fleet}"\nkind = "{args.kind}"\n'
        f'data_dir = "."\n\n[bridge]\npublic_key = "{args.bridge_key}"\n\n'
        f'[mqtt]\nurl = "{args.mqtt_url}"\nusername = "{args.device_id}"\n'
        f'password_file = "{mqtt_password.SECRET_FILE}"\n\n[report]\ninterval_s = 60\n\n'
        f'[sensors]\nsource = "{args.source}"\nseed = {seed}\n\n{rules}{sos}'
    )
