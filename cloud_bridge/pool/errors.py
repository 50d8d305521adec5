"""Exceptions of the credit-pool engine: misuse and bad configuration, never business refusals.

A refused draw, an unknown hold or a repayment larger than the debt is a `Result` code returned
in the outcome. These exceptions are for a command that cannot even be stated (a negative amount,
a malformed user id) and for a policy file that is wrong.
"""

from __future__ import annotations

from cloud_bridge.errors import BridgeError


class PoolError(BridgeError):
    """Root of the pool engine's exceptions."""


class InvalidCommand(PoolError, ValueError):
    """A command whose fields are malformed (wrong type, out of range, bad identifier)."""


class PolicyError(PoolError):
    """A policy file or mapping that is wrong; the message names the key and the fix."""


class InvalidApplicant(PoolError, ValueError):
    """An application whose attributes are malformed (wrong type, unknown category or name)."""


class ScorecardError(PoolError):
    """A scorecard artifact that cannot be read or is inconsistent."""
