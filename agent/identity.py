"""Device identity for the enrollment record: board serial, network MAC and model.

Read from the places Raspberry Pi OS and most Linux boards expose them; absent ones are left
out. Simulated devices pass their own.
"""

from __future__ import annotations

from pathlib import Path


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return ""


def host_identity(root: Path = Path("/")) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read(root / "proc/cpuinfo").splitlines():
        if line.lower().startswith("serial"):
            out["serial"] = line.split(":", 1)[1].strip()[:64]
    model = _read(root / "proc/device-tree/model") or _read(root / "sys/class/dmi/id/product_name")
    if model:
        out["model"] = model[:64]
    net = root / "sys/class/net"
    if net.is_dir():
        for iface in sorted(p.name for p in net.iterdir()):
            mac = _read(net / iface / "address")
            if iface != "lo" and mac and mac != "00:00:00:00:00:00":
                out["mac"] = mac[:64]
                break
    return out
