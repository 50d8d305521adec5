"""The one exception of the firmware's wire code, with the bridge's reason codes.

`reason` is one of the stable strings of protocol/errors.py (bad_cbor, not_cose, bad_header,
unsupported_alg, bad_signature, unknown_device, oversize, not_a_map, missing_field, bad_field,
unknown_kind, unsupported_version), so a refusal reads the same on the device and the bridge.
"""


class ProtocolError(ValueError):
    """A message that does not satisfy the wire contract; `reason` says which way."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + ": " + detail if detail else reason)
        self.reason = reason
        self.detail = detail
