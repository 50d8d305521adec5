"""The send window carried out against the flash outbox (the agent's agent/sender.py, for the
device): number entries when the window says so, publish what it plans, persist its acks.

    connected(window, box, now_ms)     a new MQTT session
    drain(window, box, publish)        publish(entry) -> MQTT packet id; until nothing is due
    tick(window, box, now_ms)          apply acks to the outbox; resend after an ack timeout

An entry whose payload failed its check on flash (outbox.Corrupt) is already dropped: it is not
published, and the window is told of fewer publishes than planned (window.sent allows it).
"""

from outbox import Corrupt


def connected(window, box, now_ms):
    window.on_connected(now_ms, box.next_seq(), box.resume_seq(), box.last_ack)


def drain(window, box, publish):
    """Carry out the window's plan until it has nothing more to do now; publishes made."""
    made = 0
    while True:
        plan = window.plan()
        if plan.number:
            first = last = 0
            for _ in range(plan.number):
                entry = box.next_unsent()
                if entry is None:
                    break
                last = box.number(entry)
                first = first or last
            if not last:
                return made
            window.numbered(first, last)
        elif plan.publish_hi:
            pairs = []
            for e in box.in_flight():
                if plan.publish_lo <= e.seq <= plan.publish_hi:
                    try:
                        pairs.append((e.seq, publish(e)))
                    except Corrupt:
                        continue
            window.sent(plan.publish_hi, pairs)
            made += len(pairs)
        else:
            return made


def tick(window, box, now_ms, force_flush=False):
    """Let time act (window.tick); the ack it asks to persist is applied to the outbox."""
    result = window.tick(now_ms, force_flush)
    if result.persist_ack:
        box.ack(result.persist_ack)
        window.persisted(result.persist_ack, now_ms)
    return result
