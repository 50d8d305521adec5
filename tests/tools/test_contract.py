"""The written contract against the code and the vectors: the CDDL of docs/protocol.md (through
pycddl) and docs/asyncapi.yaml (through JSON Schema and the AsyncAPI CLI).

When a field or a kind is added to protocol/messages.py, the coverage tests below fail and say
where the document needs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol import cbor, messages, topics
from protocol.errors import ProtocolError
from protocol.schema import _schema
from tests.protocol.strategies import any_message, ids
from tools.contract import cddl as cddl_mod
from tools.contract.asyncapi import ASYNCAPI_DOC, AsyncApi
from tools.contract.cddl import Cddl, ContractError, Expect, check_vectors
from tools.contract.jsonview import to_json

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "project.json").read_text())
CLI = ROOT / "tools" / "contract" / "node_modules" / ".bin" / "asyncapi"
RECORDS = [*messages.KINDS.values(), *messages.BODIES.values()]


@pytest.fixture(scope="module")
def contract() -> Cddl:
    return Cddl.from_doc()


@pytest.fixture(scope="module")
def api() -> AsyncApi:
    return AsyncApi.load()


def _payload(name: str) -> dict[int, Any]:
    vec = next(v for v in VECTORS["messages"] if v["name"] == name)
    return dict(cbor2.loads(bytes.fromhex(vec["payload"])))


# ---- CDDL ------------------------------------------------------------------------------------


def test_every_vector_is_as_the_cddl_says(contract: Cddl) -> None:
    results = check_vectors(contract, VECTORS)
    assert [r for r in results if not r.ok] == []
    valid = [r.name for r in results if r.expected is Expect.VALID]
    refused = [r.name for r in results if r.expected is Expect.INVALID]
    assert len(valid) == len(VECTORS["messages"]) + len(VECTORS["cose"])
    assert len(refused) == len(VECTORS["refused"]) - len(cddl_mod.NOT_SCHEMA_MATTERS)
    assert set(cddl_mod.NOT_SCHEMA_MATTERS) <= {v["name"] for v in VECTORS["refused"]}


@pytest.mark.parametrize(
    ("name", "kind", "change", "why"),
    [
        ("report", "Report", {12: 1001}, "risk_pm above 1000"),
        ("report", "Report", {1: 1}, "the kind of a Birth"),
        ("risk", "Risk", {12: "é" * 33}, "a reason of 33 characters"),
        ("trigger-restock", "Trigger", {17: "ev_tier"}, "a restock body under ev_tier"),
        ("trigger-ev", "Trigger", {17: "emergency"}, "an EV body under emergency"),
        ("report", "Report", {2: "rig 07"}, "a sender that is not an id"),
        ("report", "Report", {2: "r" * 65}, "a sender of 65 characters"),
        ("pool-state", "PoolState", {11: "paused"}, "an unknown pool status"),
        ("pool-state", "PoolState", {12: 2**63}, "a limit beyond int64"),
        ("pool-state", "PoolState", {30: 1}, "a key this revision does not write"),
        ("ack", "Ack", {11: -1}, "a negative ack_seq"),
        ("ack", "Ack", {0: 2}, "major version 2"),
        ("birth", "Birth", {12: b"short"}, "a model hash that is not 32 bytes"),
        ("decision", "Decision", {13: "maybe"}, "an unknown risk decision"),
    ],
)
def test_the_cddl_refuses_a_broken_payload(
    contract: Cddl, name: str, kind: str, change: dict[int, Any], why: str
) -> None:
    payload = _payload(name)
    assert contract.check_payload(cbor2.dumps(payload), kind) == []
    payload.update(change)
    assert contract.check_payload(cbor2.dumps(payload), kind), why


@settings(max_examples=150)
@given(msg=any_message)
def test_everything_the_code_writes_matches_the_cddl_and_the_asyncapi(
    contract: Cddl, api: AsyncApi, msg: messages.Message
) -> None:
    # Found that the CDDL counted text in bytes (.size) where protocol/fields.py counts characters.
    try:
        payload = messages.encode(msg)
    except ProtocolError:
        assume(False)  # over 4 KiB: never on the wire
    kind = type(msg).__name__
    assert contract.check_payload(payload, kind) == []
    assert api.errors(kind, to_json(cbor.loads(payload))) == []


_INTS = st.integers(-(2**64) + 1, 2**64 - 1) | st.sampled_from(
    [0, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 10_000, 10_001, 100_000, 100_001, 10**12, 10**12 + 1]
)
_SCALARS = (
    _INTS
    | st.text(max_size=70)
    | st.text(min_size=250, max_size=600)
    | ids
    | st.binary(max_size=70)
    | st.binary(min_size=1000, max_size=1100)
    | st.booleans()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=20) | st.dictionaries(st.integers(0, 30) | ids, inner, max_size=40)
    ),
    max_leaves=40,
)


@settings(max_examples=150)
@given(msg=any_message, data=st.data())
def test_the_code_and_the_cddl_agree_on_a_payload_with_one_value_changed(
    contract: Cddl, msg: messages.Message, data: st.DataObject
) -> None:
    """Differential: protocol.messages.decode and the CDDL accept and refuse the same payloads
    (a field, or an entry of a map field, replaced by an arbitrary plain CBOR value)."""
    try:
        fields = dict(cbor2.loads(messages.encode(msg)))
    except ProtocolError:
        assume(False)
    key = data.draw(st.sampled_from(sorted(k for k in fields if k >= 2)))
    value = fields[key]
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        entry = data.draw(st.sampled_from(sorted(value, key=repr)))
        fields[key] = {**value, entry: data.draw(_VALUES)}
    else:
        fields[key] = data.draw(_VALUES)
    payload = cbor2.dumps(fields, canonical=True)
    try:
        messages.decode(payload)
        code_accepts = True
    except ProtocolError:
        code_accepts = False
    failures = contract.check_payload(payload, type(msg).__name__)
    assert code_accepts == (not failures), (key, fields[key], failures)


def test_the_cddl_refuses_a_missing_required_key(contract: Cddl) -> None:
    payload = _payload("risk")
    del payload[12]
    assert contract.check_payload(cbor2.dumps(payload), "Risk")


def test_a_payload_of_one_kind_is_not_another(contract: Cddl) -> None:
    assert contract.check(messages.Ack.__name__, bytes.fromhex(VECTORS["messages"][0]["payload"]))


def test_every_record_and_field_of_the_code_is_in_the_cddl(contract: Cddl) -> None:
    """Each message and trigger body class is a CDDL rule holding each of its keys."""
    missing = []
    for cls in RECORDS:
        if cls.__name__ not in contract.rules:
            missing.append(f"rule {cls.__name__} (protocol.messages.{cls.__name__})")
            continue
        body = _expanded(contract, cls.__name__)
        if cls in messages.KINDS.values() and not re.search(rf"\b1\s*=>\s*{int(cls.KIND)}\b", body):
            missing.append(f"{cls.__name__}: key 1 => {int(cls.KIND)} (its kind)")
        for key, name, _typ, required in _schema(cls):
            entry = re.search(rf"(\?\s*)?\b{key}\s*=>", body)
            if key <= 5 and cls in messages.KINDS.values():
                continue  # the common header group
            if entry is None:
                missing.append(f"{cls.__name__}: key {key} ({name})")
            elif (entry.group(1) is None) != required:
                missing.append(f"{cls.__name__}: key {key} ({name}) must be {_opt(required)}")
    assert not missing, (
        "docs/protocol.md section 3 (```cddl blocks) lacks: "
        + "; ".join(missing)
        + ". Add them there; the CDDL is the contract the cloud team validates."
    )


def test_the_message_rule_names_every_kind(contract: Cddl) -> None:
    body = _rule_text(contract.source, cddl_mod.MESSAGE_RULE)
    named = set(re.findall(r"[A-Za-z]+", body.split("=", 1)[1]))
    absent = {cls.__name__ for cls in messages.KINDS.values()} - named
    assert not absent, f"add {sorted(absent)} to the Message rule of docs/protocol.md section 3"


def _rule_text(source: str, rule: str) -> str:
    """The text of one rule: from its name to the next rule."""
    match = re.search(rf"^{re.escape(rule)}\s*=.*?(?=^[A-Za-z_][\w-]*\s*=|\Z)", source, re.S | re.M)
    assert match, rule
    return re.sub(r";[^\n]*", "", match.group(0))  # comments may mention other keys


def _expanded(contract: Cddl, rule: str) -> str:
    """The text of a rule with the rules it names (but the header), recursively: a kind may be
    a choice of maps that share a group (Trigger)."""
    seen: set[str] = set()
    todo = [rule]
    texts = []
    while todo:
        name = todo.pop()
        if name in seen or name == "header" or name not in contract.rules:
            continue
        seen.add(name)
        text = _rule_text(contract.source, name)
        texts.append(text)
        todo.extend(re.findall(r"[A-Za-z_][\w-]*", text.split("=", 1)[1]))
    return "\n".join(texts)


def _opt(required: bool) -> str:
    return "required (no ?)" if required else "optional (? key => ...)"


def test_an_unknown_map_key_type_says_where_to_declare_it() -> None:
    with pytest.raises(ContractError, match=r"KEY_BASE_TYPES in tools/contract/cddl\.py"):
        Cddl("r = { * fancy => int }\nfancy = tstr .size 3\n")


def test_extract_takes_every_cddl_block_and_nothing_else() -> None:
    text = "a\n```cddl\nx = 1\n```\n```python\ny = 2\n```\n```cddl\nz = x\n```\n"
    assert cddl_mod.extract(text) == "x = 1\n\nz = x\n"


# ---- AsyncAPI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", VECTORS["messages"], ids=lambda v: v["name"])
def test_every_vector_matches_its_asyncapi_payload_schema(api: AsyncApi, vec: dict[str, Any]):
    payload = to_json(cbor2.loads(bytes.fromhex(vec["payload"])))
    assert api.errors(vec["kind"], payload) == []


@pytest.mark.parametrize(
    ("name", "kind", "key", "value"),
    [
        ("report", "Report", "12", 1001),
        ("report", "Report", "2", "rig 07"),
        ("pool-state", "PoolState", "11", "paused"),
        ("pool-state", "PoolState", "30", 1),
        ("birth", "Birth", "12", "00"),
        ("trigger-restock", "Trigger", "17", "ev_tier"),  # a restock body under ev_tier
        ("ack", "Ack", "1", 7),
    ],
)
def test_the_asyncapi_schema_refuses_a_broken_payload(
    api: AsyncApi, name: str, kind: str, key: str, value: Any
) -> None:
    payload = to_json(_payload(name))
    assert api.errors(kind, payload) == []
    payload[key] = value
    assert api.errors(kind, payload)


def test_every_record_and_field_of_the_code_is_in_the_asyncapi_schemas(api: AsyncApi) -> None:
    problems = []
    schemas = api.schemas
    for cls in RECORDS:
        schema = schemas.get(cls.__name__)
        if schema is None:
            problems.append(f"components.schemas.{cls.__name__} is missing")
            continue
        props = schema["properties"]
        for key, name, _typ, required in _schema(cls):
            prop = props.get(str(key))
            where = f"components.schemas.{cls.__name__}.properties['{key}']"
            if prop is None:
                problems.append(f"{where} ({name}) is missing")
            elif prop.get("title") != name:
                problems.append(f"{where} has title {prop.get('title')!r}, the code says {name!r}")
            elif (str(key) in schema["required"]) != required:
                problems.append(f"{where} ({name}) must be {_opt(required)} in 'required'")
        known = {str(k) for k, *_ in _schema(cls)} | {"0", "1", "17"}
        extra = set(props) - known
        if extra:
            problems.append(
                f"components.schemas.{cls.__name__} has keys {sorted(extra)} "
                "that protocol/messages.py does not know"
            )
    for cls in messages.KINDS.values():
        try:
            message = api.message_for_kind(cls.__name__)
        except LookupError as exc:
            problems.append(str(exc))
            continue
        assert message["payload"]["$ref"].endswith(f"/{cls.__name__}")
        assert schemas[cls.__name__]["properties"]["1"]["const"] == int(cls.KIND)
        assert message["contentType"] == "application/cbor"
    assert not problems, "docs/asyncapi.yaml is behind protocol/messages.py: " + "; ".join(problems)


def _example_topics() -> list[tuple[str, str]]:
    """(topic, kind) for every channel of protocol.topics, built by protocol.topics."""
    out = [(topics.device("f", "rig-1", c), c.value) for c in topics.DEVICE_CHANNELS]
    out.append((topics.device("f", "rig-1", topics.Channel.ACK), "ack"))
    out += [(topics.command("f", "rig-1", name), "cmd") for name in sorted(messages.COMMANDS)]
    out.append((topics.pool("f", "u-1", topics.Channel.POOL_STATE), "state"))
    out.append((topics.pool("f", "u-1", topics.Channel.POOL_DECISION), "decision"))
    out.append((topics.pool("f", "u-1", topics.Channel.POOL_EVENT), "event"))
    out.append((topics.pool("f", "u-1", topics.Channel.POOL_PAYOUT), "payout"))
    out.append((topics.risk("f", "rig-1"), "risk"))
    out.append((topics.bridge_state("f"), "bridge_state"))
    out.append((topics.claim("f", "claim-0a1b"), "claim"))
    out.append((topics.claim("f", "claim-0a1b", topics.Channel.CLAIM_ANSWER), "claim_answer"))
    out.append((topics.device("f", "rig-1", topics.Channel.DIAG), "diag"))
    return out


# Which message each channel of protocol.topics carries (docs/protocol.md section 1).
CHANNEL_KIND = {
    "birth": "Birth", "death": "Death", "report": "Report", "trigger": "Trigger",
    "enroll": "Enrollment", "ack": "Ack", "cmd": "Command", "state": "PoolState",
    "decision": "Decision", "risk": "Risk", "bridge_state": "BridgeState", "event": "PoolEvent",
    "payout": "Payout", "application": "Application",
    "claim": "Enrollment", "claim_answer": "ClaimAnswer", "diag": "Diag",
}  # fmt: skip


def test_the_message_examples_are_the_vectors_and_match_their_schemas(api: AsyncApi) -> None:
    vectors = {v["name"]: v for v in VECTORS["messages"]}
    seen = set()
    for message in api.messages.values():
        for example in message.get("examples", []):
            vec = vectors[example["name"]]
            assert vec["kind"] == message["name"]
            assert example["payload"] == to_json(cbor2.loads(bytes.fromhex(vec["payload"])))
            assert api.errors(message["name"], example["payload"]) == []
            seen.add(example["name"])
    assert seen == set(vectors), "run python -m tools.contract.examples (docs/asyncapi.yaml)"


def test_the_examples_are_current() -> None:
    from tools.contract import examples

    document = ASYNCAPI_DOC.read_text()
    assert examples.rewrite(document, VECTORS) == document, (
        "docs/asyncapi.yaml's examples differ from tests/vectors: "
        "run python -m tools.contract.examples"
    )
    changed = json.loads(json.dumps(VECTORS))
    ack = next(v for v in changed["messages"] if v["name"] == "ack")
    payload = dict(cbor2.loads(bytes.fromhex(ack["payload"])))
    payload[11] = 123456789
    ack["payload"] = cbor2.dumps(payload).hex()
    rewritten = examples.rewrite(document, changed)
    assert "'11': 123456789" in rewritten
    assert len(rewritten.splitlines()) == len(document.splitlines())


def test_every_topic_of_the_tree_has_one_channel_with_its_message(api: AsyncApi) -> None:
    examples = _example_topics()
    assert {channel for _t, channel in examples} == {c.value for c in topics.Channel}, (
        "a channel of protocol.topics.Channel has no example here: add it to _example_topics"
    )
    for topic, channel in examples:
        name = api.channel_for(topic)
        assert api.channel_kinds(name) == {CHANNEL_KIND[channel]}, topic
    command_enum = api.doc["components"]["parameters"]["command"]["enum"]
    assert set(command_enum) == messages.COMMANDS


def test_operations_cover_both_views_with_retain_where_the_protocol_retains(api: AsyncApi):
    ops = api.doc["operations"].values()
    sent = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in ops if op["action"] == "send"}
    received = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in ops if op["action"] == "receive"}
    assert sent | received == set(api.doc["channels"])
    cloud = {
        op["channel"]["$ref"].rsplit("/", 1)[1]
        for op in ops
        if {"name": "cloud-team"} in op["tags"]
    }
    assert cloud == {"poolDecision", "poolState", "poolEvent", "poolPayout", "risk", "bridgeState"}
    retained = {
        op["channel"]["$ref"].rsplit("/", 1)[1] for op in ops if op["bindings"]["mqtt"]["retain"]
    }
    assert retained == {"poolState", "bridgeState"}
    security = api.doc["components"]["securitySchemes"]
    assert [s["type"] for s in security.values()] == ["userPassword"]


def test_the_asyncapi_cli_validates_the_document() -> None:
    if not CLI.exists():
        pytest.fail(
            f"the AsyncAPI CLI is not installed at {CLI.relative_to(ROOT)}: run "
            "tools/contract/check.sh install (npm ci; .ci/run does it first)"
        )
    env = {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(CLI.parents[2] / "analytics-off.json")}
    run = subprocess.run(
        [str(CLI), "validate", str(ASYNCAPI_DOC), "--fail-severity", "warn"],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "is valid" in run.stdout + run.stderr


def test_the_asyncapi_cli_refuses_a_broken_document(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.fail("the AsyncAPI CLI is not installed: run tools/contract/check.sh install")
    broken = ASYNCAPI_DOC.read_text().replace(
        "$ref: '#/components/schemas/PoolState'", "$ref: '#/components/schemas/NoSuchSchema'"
    )
    (tmp_path / "asyncapi.yaml").write_text(broken)
    env = {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(CLI.parents[2] / "analytics-off.json")}
    run = subprocess.run(
        [str(CLI), "validate", str(tmp_path / "asyncapi.yaml"), "--fail-severity", "warn"],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert run.returncode != 0, run.stdout


def test_json_form_of_a_payload() -> None:
    value = {0: 1, 13: b"\x00\xff", 16: {"steps": 2**62}, 18: ["a"], 10: True}
    assert to_json(value) == {"0": 1, "13": "00ff", "16": {"steps": 2**62}, "18": ["a"], "10": True}
    assert json.loads(json.dumps(to_json({3: 2**63 - 1})))["3"] == 2**63 - 1
    with pytest.raises(TypeError):
        to_json({0: 1.5})


def test_a_record_class_is_a_dataclass() -> None:
    # _schema reads dataclass fields; a record that is not one would be silently empty here.
    assert all(dataclasses.is_dataclass(cls) for cls in RECORDS)


# ---- the adaptations for cddl-rs, and the command line ------------------------------------------


def test_adapt_anchors_regexps_relaxes_key_types_and_strips_embedded_cbor() -> None:
    source = (
        "x = { * id => int, * small_key => int, * tstr => int }\n"
        'e = [bstr .cbor h, bstr .cbor Message]\nid = tstr .regexp "[a-z]{1,3}"\n'
    )
    assert cddl_mod.adapt(source) == (
        "x = { * tstr => int, * uint => int, * tstr => int }\n"
        'e = [bstr, bstr]\nid = tstr .regexp "^(?:[a-z]{1,3})$"\n'
    )


def test_an_anchored_regexp_matches_the_whole_text_as_rfc_8610_says() -> None:
    ids = Cddl('r = id\nid = tstr .regexp "[a-z]{1,3}"\n')
    assert ids.check("r", cbor2.dumps("abc")) is None
    assert ids.check("r", cbor2.dumps("abcd"))  # unanchored, "abc" inside would match
    assert ids.check("r", cbor2.dumps("a b"))


def test_the_command_line_fails_on_a_vector_the_cddl_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = json.loads(json.dumps(VECTORS))
    report = next(v for v in broken["messages"] if v["name"] == "report")
    payload = dict(cbor2.loads(bytes.fromhex(report["payload"])))
    payload[12] = 5000  # risk_pm out of range; the envelope still has the old payload
    report["payload"] = cbor2.dumps(payload).hex()
    (tmp_path / "v.json").write_text(json.dumps(broken))
    assert cddl_mod.main([str(tmp_path / "v.json")]) == 1
    err = capsys.readouterr().err
    assert "vector report should be valid" in err and "/12" in err
    assert cddl_mod.main([]) == 0


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ("r = { 5 => uint }", {5: {24: 369}}),  # a map for an integer
        ("r = { 3 => 0..100 }", {3: b"\x02"}),  # a byte string for a range
        ("r = { 13 => bstr .size (0..64) }", {13: ""}),  # text for bytes
    ],
)
def test_what_pycddl_alone_lets_through_the_pair_refuses(schema: str, value: object) -> None:
    pair = Cddl(schema + "\n")
    report = pair.check("r", cbor2.dumps(value))
    assert report is not None and "cddl-verifier" in report
    assert "pycddl" not in report  # the reason for the second validator: pycddl accepts these
