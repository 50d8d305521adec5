"""Hypothesis strategies for every message of the contract, derived from field types."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from protocol import fields as f
from protocol import messages as m
from protocol.strokes import MAX_STROKES, STROKE_FEATURES, STROKE_VALUE_MAX, Strokes

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)


def for_type(typ: Any) -> st.SearchStrategy[Any]:
    if isinstance(typ, f.UInt):
        return st.integers(0, typ.max)
    if isinstance(typ, f.Int):
        return st.integers(f.INT64_MIN, f.INT64_MAX)
    if isinstance(typ, f.Bool):
        return st.booleans()
    if isinstance(typ, f.Id):
        return ids
    if isinstance(typ, f.Text):
        return st.text(max_size=min(typ.max_len, 40))
    if isinstance(typ, f.Choice):
        return st.sampled_from(sorted(typ.values))
    if isinstance(typ, f.Bytes):
        return st.binary(min_size=typ.min_len, max_size=typ.max_len)
    if isinstance(typ, f.TextList):
        return st.lists(st.text(max_size=20), max_size=5).map(tuple)
    if isinstance(typ, f.IntMap):
        keys = ids if typ.text_keys else st.integers(0, typ.key_max)
        return st.dictionaries(keys, st.integers(f.INT64_MIN, f.INT64_MAX), max_size=6)
    if isinstance(typ, f.PackedIntMap):  # whole fingerprints (packed), and maps with gaps
        values = st.integers(f.INT64_MIN, f.INT64_MAX) | st.just(0)
        whole = st.lists(values, min_size=1, max_size=typ.max_items).map(
            lambda vs: dict(enumerate(vs))
        )
        gaps = st.dictionaries(st.integers(0, typ.max_items - 1), values, max_size=6)
        return whole | gaps
    if isinstance(typ, f.TextMap):
        return st.dictionaries(ids, st.text(max_size=20), max_size=4)
    if isinstance(typ, f.Args):
        values = st.one_of(
            st.integers(-1000, 1000), st.text(max_size=20), st.binary(max_size=20), st.booleans()
        )
        return st.dictionaries(ids, values, max_size=4)
    if isinstance(typ, f.Scalars):
        values = st.one_of(st.integers(f.INT64_MIN, f.INT64_MAX), st.text(max_size=typ.max_len))
        return st.dictionaries(ids, values, max_size=4)
    if isinstance(typ, f.IntRange):
        return st.integers(typ.min, typ.max)
    if isinstance(typ, m.Location_):
        return st.none() | record(m.Location)
    if isinstance(typ, Strokes):
        value = st.integers(-STROKE_VALUE_MAX, STROKE_VALUE_MAX)
        stroke = st.lists(value, min_size=len(STROKE_FEATURES), max_size=len(STROKE_FEATURES))
        return st.lists(stroke.map(tuple), max_size=MAX_STROKES).map(tuple)
    if isinstance(typ, m.Body_):
        return st.one_of(*[record(cls) for cls in m.BODIES.values()])
    raise TypeError(f"no strategy for {typ!r}")


def record(cls: type) -> st.SearchStrategy[Any]:
    kwargs = {
        fl.name: for_type(fl.metadata["type"])
        for fl in dataclasses.fields(cls)
        if "cbor" in fl.metadata
    }
    return st.builds(cls, **kwargs)


any_message = st.one_of(*[record(cls) for cls in m.KINDS.values()])
