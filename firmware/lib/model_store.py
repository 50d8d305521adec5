"""The model in use: the built-in model card (model_card.py, frozen into the firmware) or one
installed by a model command (a card file on flash named in model.json). A card that fails to
load at boot is rolled back: model.json is removed and the built-in card is used.

    model = current(storage)            a scorer.Model
    load_card(storage, name)            a scorer.Model of the card file (raises if bad)
    select(storage, name)               point model.json at it (one rename: atomic)
"""

import json

import model_card
import scorer

POINTER = "model.json"
MAX_CARD_BYTES = 96 * 1024


def card_name(sha256):
    return "card_%s.py" % sha256.hex()[:16]


class _Card:
    # the module namespace of a card file as attributes (what scorer.Model reads)
    def __init__(self, namespace):
        for key, value in namespace.items():
            setattr(self, key, value)


def load_card(storage, name):
    source = storage.read(name)
    if source is None:
        raise ValueError("card %s is missing" % name)
    namespace = {}  # type: dict
    exec(source, namespace)  # noqa: S102 - a card whose SHA-256 the bridge signed
    for attr in ("MODEL_ID", "MODEL_SHA256", "N_INPUTS", "LAYERS", "RISK_PM"):
        if attr not in namespace:
            raise ValueError("card has no %s" % attr)
    return scorer.Model(_Card(namespace))


def select(storage, name):
    storage.write(POINTER + ".tmp", json.dumps({"card": name}))
    storage.rename(POINTER + ".tmp", POINTER)


def current(storage, log=print):
    raw = storage.read(POINTER)
    if raw is not None:
        try:
            return load_card(storage, json.loads(raw)["card"])
        except Exception as exc:  # roll back to the built-in card
            log("model: installed card does not load (%s); rolling back" % exc)
            storage.remove(POINTER)
    return scorer.Model(model_card)
