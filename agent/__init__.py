"""Edge agent for Linux-class devices (Raspberry Pi, phones): sense, score, sign, forward."""

__version__ = "0.1.0"
