"""The download: HTTP GET with `Range: bytes=<offset>-` from the persisted offset, appended to
download.part and fsynced before each reported offset, so a power cut costs at most the last
chunk. Returns a FetchFailed status for the state machine to judge (4xx stops, others are
retried within the budget) or Downloaded once the whole file is there and checked."""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from agent.update.machine import Downloaded, Fetched, FetchFailed
from agent.update.release import digest_of

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
PERSIST_EVERY = 64 * 1024  # bytes between fsync + offset writes
TIMEOUT_S = 30


def fetch(
    url: str,
    path: Path,
    offset: int,
    size: int,
    sha256_hex: str,
    progress: Callable[[Fetched], object],
) -> FetchFailed | Downloaded:
    """Download from `offset` to `size` into `path`; `progress` gets each durable offset."""
    with open(path, "ab") as fh:
        fh.truncate(offset)  # bytes past the persisted offset were never acknowledged
    if offset < size:
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                if resp.status == 200 and offset:  # the server ignored Range: start over
                    offset = 0
                with open(path, "r+b") as fh:
                    fh.truncate(offset)
                    fh.seek(offset)
                    unsynced = 0
                    while offset < size and (chunk := resp.read(min(CHUNK, size - offset))):
                        fh.write(chunk)
                        offset += len(chunk)
                        unsynced += len(chunk)
                        if unsynced >= PERSIST_EVERY:
                            fh.flush()
                            os.fsync(fh.fileno())
                            progress(Fetched(offset))
                            unsynced = 0
                    fh.flush()
                    os.fsync(fh.fileno())
                    progress(Fetched(offset))
        except urllib.error.HTTPError as exc:
            log.warning("update: download %s: HTTP %d", url, exc.code)
            return FetchFailed(exc.code)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("update: download %s at %d: %s", url, offset, exc)
            return FetchFailed(0)
        if offset < size:
            log.warning("update: download %s ended at %d of %d bytes", url, offset, size)
            return FetchFailed(0)
    digest, got = digest_of(path)
    return Downloaded(digest_ok=got == size and digest == sha256_hex)
