"""Staged rollouts (cloud_bridge.rollout): a stable subset by the device id's hash."""

from __future__ import annotations

import hashlib

import pytest

from cloud_bridge.rollout import BUCKETS, bucket, chosen

DEVICES = [f"dev-{i:04d}" for i in range(2000)]


def test_bucket_is_the_id_hash() -> None:
    digest = hashlib.sha256(b"dev-0001").digest()
    assert bucket("dev-0001") == int.from_bytes(digest[:8], "big") % BUCKETS


def test_raising_the_percentage_only_adds_devices() -> None:
    ten, fifty = set(chosen(DEVICES, 10)), set(chosen(DEVICES, 50))
    assert ten < fifty
    assert chosen(DEVICES, 0) == [] and chosen(DEVICES, 100) == sorted(DEVICES)
    assert 150 <= len(ten) <= 250  # about 10 % of 2000
    assert chosen(reversed(DEVICES), 10) == sorted(ten)  # the order given does not matter


@pytest.mark.parametrize("percent", [-1, 100.5])
def test_percent_out_of_range(percent: float) -> None:
    with pytest.raises(ValueError, match="from 0 to 100"):
        chosen(DEVICES, percent)
