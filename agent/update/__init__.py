"""Self-update of the Linux agent: a signed manifest, a pure state machine, and thin I/O.

- manifest: the signed manifest (version, SHA-256, URL, size, minimum version) and versions.
- machine: the update as a pure function (state, event) -> (state, effects).
- store: the state persisted atomically in the state directory, under a lock.
- fetch: the download (HTTP Range resume, a retry budget, stop on 4xx).
- release: releases/<version>/ unpacked side by side and the `current` symlink.
- launch: the launcher systemd runs; it starts `current`, counts trial starts and rolls back.
- worker: the running agent's side (offer, download, install, restart, commit on an ack).
"""
