"""Test harness: real components (a private Mosquitto, PostgreSQL, independent verifiers)."""
