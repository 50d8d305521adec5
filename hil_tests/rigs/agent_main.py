"""``python -m hil_tests.rigs.agent_main run --config ...``: `edge-agent` as a virtual rig runs.

Exactly ``agent.cli.main`` unless the bench sets a fault switch in the environment. The
switches live here, in the bench, and never ship: the product has no such code path.

- ``HIL_BROKEN_BUILD=delete-before-ack``: a deliberately broken build whose outbox forgets each
  message as soon as it is numbered for sending, before any end-to-end ack covers it. The
  bench's outage, partition and power-cut scenarios must fail on it
  (hil_tests/test_broken_build.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from agent import cli
from agent.outbox import Entry, Outbox

BROKEN_ENV = "HIL_BROKEN_BUILD"
DELETE_BEFORE_ACK = "delete-before-ack"
BROKEN_BUILDS = (DELETE_BEFORE_ACK,)


def break_outbox() -> None:
    """Make Outbox.assign delete what it numbers, as if the ack had already come."""
    assign = Outbox.assign

    def assign_and_forget(self: Outbox, limit: int, sign: Callable[[bytes], bytes]) -> list[Entry]:
        entries = assign(self, limit, sign)
        if entries:
            self.ack(entries[-1].seq or 0)
        return entries

    Outbox.assign = assign_and_forget  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    broken = os.environ.get(BROKEN_ENV, "")
    if broken == DELETE_BEFORE_ACK:
        print(f"hil: BROKEN BUILD {broken}: the outbox deletes before the ack", flush=True)
        break_outbox()
    elif broken:
        print(f"hil: unknown {BROKEN_ENV}={broken!r}; expected one of {BROKEN_BUILDS}")
        return 2
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
