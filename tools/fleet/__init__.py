"""The fleet simulator's building blocks, shared by `python -m tools.fleet` and the demo.

plan      households of simulated devices and their agent configuration (pure)
bridge    set up, run and query a bridge through the real `cloud-bridge` CLI
devices   provision, enroll, run, watch and clone devices as real `edge-agent` processes
loss      the zero-loss check after the agents have stopped
"""
