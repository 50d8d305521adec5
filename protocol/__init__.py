"""The wire contract shared by the firmware, the agent, the bridge and the cloud team.

Pure and free of I/O: topics, typed CBOR messages, the COSE_Sign1 envelope and the replay window.
See docs/protocol.md.
"""

from protocol.errors import ProtocolError, Reason

__all__ = ["ProtocolError", "Reason"]
