"""The update manifest: which agent release to install, signed by the bridge (COSE_Sign1, the
same envelope and key as every bridge message).

    {1: version, 2: sha256 (32 bytes), 3: url, 4: min_version, 5: size, 6: target}

`version` is the release to run; `sha256` and `size` are those of the release tarball at `url`;
`min_version` is the floor the device keeps once the release is committed: no later manifest
may install anything older (anti-rollback). `target` says what the release runs on: "linux-agent"
(a tarball of the agent) or "esp32" (a firmware image); each side refuses the other's. An esp32
manifest's url is http:// (the board's downloader has no TLS; the signed SHA-256 protects the
image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nacl.signing

from agent.errors import AgentError
from protocol import cbor, cose
from protocol.errors import ProtocolError
from protocol.names import AGENT_KINDS, MCU_KIND

MAX_RELEASE_BYTES = 256 * 1024 * 1024
VERSION_RE = re.compile(r"^\d{1,5}(\.\d{1,5}){0,3}$")
_VERSION = 1
_SHA256 = 2
_URL = 3
_MIN_VERSION = 4
_SIZE = 5
_TARGET = 6
TARGET_AGENT = "linux-agent"
TARGET_ESP32 = "esp32"
TARGET_KINDS: dict[str, frozenset[str]] = {
    TARGET_AGENT: frozenset(AGENT_KINDS),
    TARGET_ESP32: frozenset({MCU_KIND}),
}
"""The device kinds that run each target (a rollout reaches only those)."""


class ManifestError(AgentError):
    """A manifest that does not verify or does not make sense."""


def version_key(version: str) -> tuple[int, ...]:
    """`1.2.10` -> (1, 2, 10, 0): compared as numbers, missing parts as zeros."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ManifestError(f"version {version!r} must be 1 to 4 dot-separated numbers, e.g. 1.2.0")
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


@dataclass(frozen=True)
class Manifest:
    version: str
    sha256: bytes
    url: str
    size: int
    min_version: str = "0"
    target: str = TARGET_AGENT

    def __post_init__(self) -> None:
        if self.target not in TARGET_KINDS:
            raise ManifestError(
                f"target {self.target!r} must be one of {', '.join(sorted(TARGET_KINDS))}"
            )
        if self.target == TARGET_ESP32 and not str(self.url).startswith("http://"):
            raise ManifestError(
                f"url {self.url!r}: an esp32 image is downloaded over http:// (the board has no "
                "TLS client; the signed sha256 protects the image)"
            )
        version_key(self.version)
        version_key(self.min_version)
        if version_key(self.version) < version_key(self.min_version):
            raise ManifestError(
                f"version {self.version} is below its own min_version {self.min_version}"
            )
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise ManifestError("sha256 must be 32 bytes")
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ManifestError(f"url {self.url!r} must be http:// or https://")
        if type(self.size) is not int or not 0 < self.size <= MAX_RELEASE_BYTES:
            raise ManifestError(f"size must be 1 to {MAX_RELEASE_BYTES} bytes")

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                _VERSION: self.version,
                _SHA256: self.sha256,
                _URL: self.url,
                _MIN_VERSION: self.min_version,
                _SIZE: self.size,
                _TARGET: self.target,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> Manifest:
        try:
            doc = cbor.loads(payload)
        except (ProtocolError, ValueError) as exc:
            raise ManifestError(f"manifest is not CBOR: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) - {1, 2, 3, 4, 5, 6}:
            raise ManifestError("manifest must be a map with keys 1 to 6")
        try:
            return cls(
                version=doc[_VERSION],
                sha256=doc[_SHA256],
                url=doc[_URL],
                size=doc[_SIZE],
                min_version=doc.get(_MIN_VERSION, "0"),
                target=doc[_TARGET],
            )
        except KeyError as exc:
            raise ManifestError(f"manifest lacks key {exc.args[0]}") from exc

    def sign(self, key: nacl.signing.SigningKey) -> bytes:
        return cose.sign1(self.encode(), key, cose.kid_for(key.verify_key))


def verify(data: bytes, bridge_public_key: bytes) -> Manifest:
    """The manifest in `data` if the bridge key signed it; else ManifestError."""
    kid = cose.kid_for(bridge_public_key)
    key = nacl.signing.VerifyKey(bridge_public_key)
    try:
        signed = cose.verify1(data, lambda k: key if k == kid else None)
    except ProtocolError as exc:
        raise ManifestError(f"manifest signature: {exc}") from exc
    return Manifest.decode(signed.payload)
