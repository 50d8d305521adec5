"""Mosquitto `$7$` password hashes: against mosquitto_passwd's own output, and round trips.

The real broker accepting a file written from these hashes is tested in tests/broker/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import mqtt_password as pw
from protocol.errors import ProtocolError, Reason

# Written by `mosquitto_passwd -c -b FILE alice secret` (Mosquitto 2.0.11): an independent oracle.
MOSQUITTO_LINE = (
    "alice:$7$101$BHO4angteVnwqhfT$yFf/tz9xxRtK4zSfNM6Z5FHxixAHw+q6qUGJXkrQKm75wcSGSaiEhghu9+RSscUV"
    "4CpmHN1k3ZMGswMlTaKDuQ=="
)


def test_verify__accepts_a_hash_mosquitto_passwd_wrote() -> None:
    hashed = MOSQUITTO_LINE.split(":", 1)[1]
    assert pw.verify("secret", hashed)
    assert not pw.verify("Secret", hashed)
    assert not pw.verify("", hashed)


def test_derive__reproduces_mosquitto_passwd_byte_for_byte() -> None:
    hashed = MOSQUITTO_LINE.split(":", 1)[1]
    parsed = pw.parse(hashed)
    assert parsed.iterations == 101
    assert len(parsed.salt) == 12
    assert str(pw.derive("secret", parsed.salt, parsed.iterations)) == hashed


def test_verify__accepts_fresh_mosquitto_passwd_output(tmp_path: Path) -> None:
    # mosquitto_passwd comes with Mosquitto, which ./dev test installs for the broker tests
    assert shutil.which("mosquitto_passwd"), "mosquitto_passwd not found: install mosquitto"
    secret = pw.new_secret()
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "dev-1", secret], check=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "dev-1"
    assert pw.verify(secret, hashed)
    assert not pw.verify(secret + "x", hashed)


def test_hash_password__uses_the_salt_from_rand() -> None:
    hashed = pw.hash_password("secret", rand=lambda n: bytes(range(n)))
    assert hashed.startswith("$7$101$AAECAwQFBgcICQoL$")  # base64 of bytes 0..11
    assert pw.verify("secret", hashed)


@given(st.text(min_size=1, max_size=80), st.binary(min_size=12, max_size=12))
def test_parse__round_trips(password: str, salt: bytes) -> None:
    hashed = pw.hash_password(password, rand=lambda n: salt)
    assert str(pw.parse(hashed)) == hashed
    assert pw.verify(password, hashed)


def test_new_secret__is_43_urlsafe_characters_from_rand() -> None:
    assert pw.new_secret(lambda n: b"\xff" * n) == "_" * 42 + "8"
    assert len(pw.new_secret()) == 43
    assert pw.new_secret() != pw.new_secret()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "secret",
        "$6$abc$def",
        "$7$0$AAECAwQFBgcICQoL$" + "A" * 88,
        "$7$101$$" + "A" * 88,
        "$7$101$AAECAwQFBgcICQoL$AAAA",  # a 3-byte key
        "$7$101$AAECAwQFBgcICQoL$" + "A" * 88 + "\n",
        "$7$101$AAE!AwQFBgcICQoL$" + "A" * 88,
        "$7$101$AAECAwQFBgcICQoL$" + "A" * 200,
    ],
)
def test_parse__refuses_what_is_not_a_7_hash(text: str) -> None:
    with pytest.raises(ProtocolError) as err:
        pw.parse(text)
    assert err.value.reason is Reason.BAD_FIELD


def test_hash_password__refuses_an_empty_password() -> None:
    with pytest.raises(ProtocolError):
        pw.hash_password("")
