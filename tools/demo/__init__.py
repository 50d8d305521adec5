"""The demo: python -m tools.demo (see docs/demo.md)."""
