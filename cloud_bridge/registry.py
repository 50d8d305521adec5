"""The device registry: device -> user, kind, enrolled baseline, keys with their history.

Enrollment checks the record's self-signature (the device proves it holds the key it enrolls).
A rotation is an enrollment signed by the device's current key naming it in `prev_kid`; the new
key is active at once and the old one is retired when the first message signed by the new key
arrives (the device re-signs its unacked outbox when it switches, so nothing is lost); a message
signed by a retired key is refused with `retired_key`. A revoked device's keys are refused with
`revoked_key`.
"""

from __future__ import annotations

import threading

import nacl.signing

from cloud_bridge.device_state import ACTIVE, RETIRED
from cloud_bridge.errors import BridgeError
from cloud_bridge.store import broker_repo
from cloud_bridge.store import registry_repo as repo
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.registry_repo import Device, DeviceKey
from protocol import cose, mqtt_password
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from protocol.replay import ReplayWindow
from protocol.topics import validate_device_id, validate_id

__all__ = ["Device", "DeviceKey", "Registry", "RegistryError", "read_record", "refuse"]

PRELOAD_KEYS = 100_000
"""Keys read into the cache at start (a few hundred bytes each); more are read on first use."""


class RegistryError(BridgeError):
    """An enrollment, rotation or revocation that cannot be done, with the reason."""


def read_record(data: bytes) -> tuple[m.Enrollment, bytes]:
    """Verify an enrollment record's self-signature; (record, kid). RegistryError if not."""
    try:
        record = m.decode_as(cose.peek_payload(data), m.Enrollment)
        own = nacl.signing.VerifyKey(record.public_key)
        own_kid = cose.kid_for(own)
        signed = cose.verify1(data, lambda kid: own if kid == own_kid else None)
    except ProtocolError as exc:
        if exc.reason is Reason.UNKNOWN_DEVICE:
            raise RegistryError(
                "the enrollment record is not signed by the key it enrolls"
            ) from exc
        raise RegistryError(f"not a valid enrollment record: {exc}") from exc
    return record, signed.kid


class Registry:
    """Registry operations run inside the caller's transaction; a small cache answers kid
    lookups on the ingest path (statuses are re-read in the batch transaction)."""

    def __init__(self) -> None:
        self._keys: dict[bytes, DeviceKey] = {}
        self._by_device: dict[str, set[bytes]] = {}  # so forgetting a device is O(its keys)
        self._lock = threading.Lock()

    # ---- enrollment and administration --------------------------------------------------------

    def enroll(self, tx: Transaction, data: bytes, user: str, now_ms: int, *, fleet: str) -> Device:
        """Register the device of an enrollment record for `user`, in the `fleet` this bridge
        serves: a record made for another fleet is refused (its device would publish on topics
        this bridge never reads)."""
        record, kid = read_record(data)
        if record.fleet != fleet:
            raise RegistryError(
                f"device {record.sender} was provisioned for fleet {record.fleet!r}, but this "
                f"bridge serves fleet {fleet!r}; enroll it with the bridge of fleet "
                f"{record.fleet!r}, or provision it again with --fleet {fleet}"
            )
        try:
            validate_id(user, "user")
            validate_device_id(record.sender)
            if record.mqtt_hash:
                mqtt_password.parse(record.mqtt_hash)
        except ProtocolError as exc:
            raise RegistryError(str(exc)) from exc
        account = broker_repo.account(tx, record.sender)
        if account is not None and account.role != broker_repo.DEVICE:
            raise RegistryError(
                f"{record.sender} is the name of a {account.role} account on the broker; "
                "provision the device under another id"
            )
        existing = self.device(tx, record.sender)
        if existing is not None:
            if self.key(tx, kid) is not None and existing.user_id == user:
                return existing  # the same record again: nothing to do
            raise RegistryError(
                f"device {record.sender} is already enrolled (user {existing.user_id}); "
                "rotate its key from the device, or revoke it first"
            )
        empty = ReplayWindow().to_bytes()
        enrolled = Device(
            record.sender,
            record.fleet,
            user,
            record.device_kind,
            ACTIVE,
            dict(record.baseline),
            dict(record.identity),
            now_ms,
            record.seq,
        )
        repo.insert_device(tx, enrolled, empty, empty)
        self._add_key(tx, kid, record.sender, record.public_key, record.seq, now_ms)
        if record.mqtt_hash:
            broker_repo.put(tx, record.sender, broker_repo.DEVICE, record.mqtt_hash, now_ms)
        device = self.device(tx, record.sender)
        assert device is not None
        return device

    def _add_key(
        self,
        tx: Transaction,
        kid: bytes,
        device: str,
        public_key: bytes,
        generation: int,
        now_ms: int,
    ) -> None:
        if self.key(tx, kid) is not None:
            raise RegistryError(f"key {kid.hex()} is already enrolled")
        repo.insert_key(tx, DeviceKey(kid, device, public_key, generation, ACTIVE), now_ms)

    def rotate(self, tx: Transaction, record: m.Enrollment, signed_by: bytes, now_ms: int) -> bytes:
        """Register the key in a rotation record signed by `signed_by`; returns the new kid."""
        current = self.key(tx, signed_by)
        if current is None or current.device_id != record.sender or current.status != ACTIVE:
            raise RegistryError("a rotation must be signed by the device's active key")
        if record.prev_kid != signed_by:
            raise RegistryError("prev_kid must name the key that signs the rotation")
        device = self.device(tx, record.sender)
        if device is None or device.status != ACTIVE:
            raise RegistryError(f"device {record.sender} is not active")
        new_kid = cose.kid_for(record.public_key)
        existing = self.key(tx, new_kid)
        if existing is not None and existing.device_id == record.sender:
            return new_kid  # the device resent its rotation: confirm again
        if record.seq <= device.key_generation:
            raise RegistryError(
                f"key generation {record.seq} is not newer than {device.key_generation}"
            )
        self._add_key(tx, new_kid, record.sender, record.public_key, record.seq, now_ms)
        repo.set_key_generation(tx, record.sender, record.seq)
        # Only the signer and the new key stay active: a key from an earlier rotation that was
        # never used (lost in a power cut, or minted by a compromised device to multiply what
        # its keys may do) stops verifying, so a device never holds more than two active keys.
        if repo.retire_keys_except(tx, record.sender, (signed_by, new_kid)):
            self.forget(record.sender)
        return new_kid

    def retire_older_keys(self, tx: Transaction, key: DeviceKey) -> int:
        """After the first message signed by `key`: its device's older keys stop verifying."""
        changed = repo.retire_older_keys(tx, key.device_id, key.generation)
        if changed:
            self.forget(key.device_id)
        return changed

    def revoke(self, tx: Transaction, device_id: str) -> int:
        if self.device(tx, device_id) is None:
            raise RegistryError(f"no device {device_id!r} is enrolled")
        n = repo.revoke(tx, device_id)
        self.forget(device_id)
        return n

    # ---- lookups ------------------------------------------------------------------------------

    def device(self, tx: Transaction, device_id: str) -> Device | None:
        return repo.device(tx, device_id)

    def devices(self, tx: Transaction) -> list[Device]:
        return repo.devices(tx)

    def key(self, tx: Transaction, kid: bytes) -> DeviceKey | None:
        return repo.key(tx, kid)

    def keys_of(self, tx: Transaction, device_id: str) -> list[DeviceKey]:
        return repo.keys_of(tx, device_id)

    def preload(self, tx: Transaction, limit: int = PRELOAD_KEYS) -> int:
        """Fill the cache with up to `limit` active keys (at start): a fleet's first messages
        after a restart then verify at once instead of each costing a lookup."""
        found = repo.active_keys(tx, limit)
        for key in found:
            self.remember(key)
        return len(found)

    def load(self, tx: Transaction, kids: set[bytes]) -> int:
        """Read these kids into the cache (one query per chunk); how many were enrolled."""
        found = repo.keys(tx, kids)
        for key in found:
            self.remember(key)
        return len(found)

    # ---- the ingest path's cache --------------------------------------------------------------

    def cached(self, kid: bytes) -> DeviceKey | None:
        with self._lock:
            return self._keys.get(kid)

    def remember(self, key: DeviceKey) -> None:
        with self._lock:
            self._keys[key.kid] = key
            self._by_device.setdefault(key.device_id, set()).add(key.kid)

    def forget(self, device_id: str | None = None) -> None:
        with self._lock:
            if device_id is None:
                self._keys.clear()
                self._by_device.clear()
            else:
                for kid in self._by_device.pop(device_id, ()):
                    self._keys.pop(kid, None)


def refuse(key: DeviceKey | None, kid: bytes) -> nacl.signing.VerifyKey | None:
    """The resolver's answer for a looked-up key: its VerifyKey, None if unknown, or
    ProtocolError(RETIRED_KEY) for a rotated-out key, ProtocolError(REVOKED_KEY) for a revoked
    one (revoking a device revokes its retired keys too)."""
    if key is None:
        return None
    if key.status == RETIRED:
        raise ProtocolError(
            Reason.RETIRED_KEY, f"key {kid.hex()} of {key.device_id} was rotated out"
        )
    if key.status != ACTIVE:
        raise ProtocolError(
            Reason.REVOKED_KEY, f"key {kid.hex()} of {key.device_id} is {key.status}"
        )
    return key.verify_key
