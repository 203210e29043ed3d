"""Network: links, addresses and routes of the process's network namespace, read with pyroute2
through /proc/<pid>/ns/net (pyroute2 enters the namespace in a helper, not in the shell)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ocish.inspect import Target


@dataclass
class Link:
    index: int
    name: str
    state: str
    mtu: int
    mac: str
    addresses: list[str] = field(default_factory=list)


@dataclass
class Route:
    dst: str
    gateway: str
    dev: str


@dataclass
class Net:
    links: list[Link]
    routes: list[Route]


def read(t: Target) -> Net:
    from pyroute2 import NetNS  # heavy: imported only when asked for
    ns = NetNS(f"/proc/{t.pid}/ns/net", flags=0)
    try:
        links = {m["index"]: Link(m["index"], m.get("ifname") or "?", m.get("state") or "?",
                                  m.get("mtu") or 0, m.get("address") or "")
                 for m in ns.get_links()}
        for a in ns.get_addr():
            link = links.get(a["index"])
            if link is not None:
                link.addresses.append(f"{a.get('address')}/{a['prefixlen']}")
        routes = []
        for r in ns.get_routes():
            dst = r.get("dst")
            routes.append(Route(f"{dst}/{r['dst_len']}" if dst else "default", r.get("gateway") or "",
                                links[r.get("oif")].name if r.get("oif") in links else ""))
    finally:
        ns.close()
    return Net(sorted(links.values(), key=lambda link: link.index), routes)
