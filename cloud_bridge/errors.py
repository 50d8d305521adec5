"""The root exception of the cloud bridge. Expected business outcomes are result codes, not
exceptions; this is for misuse, bad configuration and broken infrastructure."""


class BridgeError(Exception):
    """Anything the bridge refuses or cannot do, with a message that says how to fix it."""
