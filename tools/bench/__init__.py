"""Benchmarks of the project: `python -m tools.bench` runs them all, prints a table, writes JSON.

Each benchmark is a module here with `run(ctx: Context) -> list[Figure]`, listed in SUITES. A
figure names its unit, its target where an issue sets one, and the peer or limit it is measured
against in the same run where one exists (bare PyNaCl verify rate, raw paho publish rate).
"""
