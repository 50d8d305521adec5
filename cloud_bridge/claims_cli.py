"""`cloud-bridge claims issue|revoke`: batches of claim tokens for provisioning without an
operator per device (cloud_bridge.claims; docs/operations.md, "Fleet operations")."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyfiles
from cloud_bridge import claims, keyfile
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError

ISSUE_EXAMPLE = (
    "cloud-bridge claims issue --count 100 --user-map users.txt --ttl 1h "
    "--out batch.json --data var/bridge"
)


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    cl = sub.add_parser(
        "claims",
        help="issue or revoke batches of claim tokens (provisioning by claim)",
        description="A claim token lets one device enroll itself: on first boot it makes its "
        "key and publishes its enrollment with the token; the running bridge enrolls it for "
        "the token's user, once, and answers with its broker credentials sealed to its key.",
    )
    csub = cl.add_subparsers(dest="claims_command", metavar="ACTION", required=True)
    issue = common(
        csub.add_parser(
            "issue",
            help="sign a batch of short-lived claim tokens",
            description="Write --count tokens signed with the bridge key to --out (JSON: the "
            "batch id and, per token, its id, user and the token in hex) and admit their "
            "claim accounts on the broker until they expire. The user map is one user id a "
            "line: one line gives every token to that user, else one line per token.",
            epilog=f"example: {ISSUE_EXAMPLE}",
        )
    )
    issue.add_argument("--count", type=int, required=True, help="tokens in the batch")
    issue.add_argument("--user-map", type=Path, required=True, help="users, one id a line")
    issue.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 2d (default 1h)")
    issue.add_argument("--out", type=Path, required=True, help="the batch file to write (0600)")
    issue.add_argument("--json", action="store_true")
    revoke = common(
        csub.add_parser(
            "revoke",
            help="revoke a batch: its unused tokens stop working",
            description="Unused tokens of the batch are refused (claim_revoked) and their claim "
            "accounts leave the broker; devices already enrolled with it stay enrolled (revoke "
            "them one by one with `cloud-bridge devices revoke`).",
            epilog="example: cloud-bridge claims revoke b-3f2a9c01d4e5 --data var/bridge",
        )
    )
    revoke.add_argument("batch")


def cmd_claims(args: argparse.Namespace, cfg: BridgeConfig, now_ms: int) -> int:
    from cloud_bridge import broker_cli
    from cloud_bridge.store import claims_repo, open_store
    from protocol import claims as pc

    with open_store(cfg.store_url) as store:
        if args.claims_command == "revoke":
            with store.transaction() as tx:
                counts = claims_repo.revoke(tx, args.batch, now_ms)
            if counts is None:
                raise BridgeError(f"no claim batch {args.batch!r}")
            broker_cli.sync(cfg, store)
            print(f"revoked batch {args.batch}: {counts[0]} tokens, {counts[1]} used before")
            return 0
        try:
            text = args.user_map.read_text()
        except OSError as exc:
            raise BridgeError(f"cannot read {args.user_map}: {exc.strerror}") from exc
        users = claims.read_user_map(text, args.count)
        key = keyfile.load(cfg.key_path)
        batch, tokens = claims.issue(
            users, cfg.fleet, claims.parse_ttl(args.ttl), now_ms,
            lambda t: pc.seal_token(t, key), os.urandom,
        )  # fmt: skip
        doc = {
            "batch": batch,
            "fleet": cfg.fleet,
            "expires_ms": tokens[0].token.expires_ms,
            "tokens": [
                {"token_id": t.token.token, "user": t.token.user, "claim": t.data.hex()}
                for t in tokens
            ],
        }
        try:
            keyfiles.write_private(args.out, (json.dumps(doc, indent=1) + "\n").encode())
        except FileExistsError:
            raise BridgeError(f"{args.out} exists; choose another --out") from None
        with store.transaction() as tx:
            claims_repo.insert_batch(tx, batch, cfg.fleet, tokens, now_ms)
        broker_cli.sync(cfg, store)
    if args.json:
        print(json.dumps({"batch": batch, "count": len(tokens), "out": str(args.out)}))
    else:
        print(f"batch {batch}: {len(tokens)} claim tokens in {args.out}, valid for {args.ttl}")
    return 0
