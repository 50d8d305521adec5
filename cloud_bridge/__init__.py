"""Cloud bridge: verify device messages, keep the event log, drive the credit pool, publish."""

__version__ = "0.1.0"
