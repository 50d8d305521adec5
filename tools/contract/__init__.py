"""Checks that hold the written contract (docs/protocol.md's CDDL, docs/asyncapi.yaml) to the
messages on the wire: test vectors, live traffic and tools.tap's JSON.

    python -m tools.contract.cddl        every test vector against the CDDL
    python -m tools.contract.examples    docs/asyncapi.yaml's message examples from the vectors
    tools/contract/check.sh              the AsyncAPI CLI and the CDDL check (.ci/run runs it)
"""
