"""Stage `network`: bring up the loopback interface of a new network namespace.

A new network namespace starts with `lo` down; runc adds a "loopback" network to every config
with a new one and sets it up from its init, before the rootfs (setupNetwork), so 127.0.0.1
works in the container (crun does the same). Runs in init after `idmap`: in a user namespace
its CAP_NET_ADMIN then covers the network namespace it created. A joined network namespace
(a path) or the runtime's own is left as it is: someone else's to configure.
"""
from __future__ import annotations

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.stages.unshare import namespaces


def _new_network(ctx: Context) -> int | None:
    """The index in /linux/namespaces of a new network namespace, None without one."""
    return next((i for i, ns in namespaces(ctx) if ns["type"] == "network" and not ns.get("path")),
                None)


class Network(Stage):
    name = "network"
    side = CONTAINER
    summary = "bring up the loopback interface (lo) of the new network namespace"

    def describe(self, ctx: Context) -> str:
        i = _new_network(ctx)
        if i is None:
            return ("no new network namespace (config /linux/namespaces): the one the container "
                    "uses is left as it is.")
        return (f"{self.summary} (config /linux/namespaces/{i}): RTM_NEWLINK with IFF_UP over "
                "rtnetlink, as runc's loopback network does; other interfaces are the hooks' "
                "(CNI) to add.")

    def run(self, ctx: Context, item: str = "") -> None:
        i = _new_network(ctx)
        if i is None:
            return
        try:
            ctx.sys.link_up("lo")
        except OSError as e:
            raise StageError(self.name, "set link up", "lo", e.errno or 0,
                             f"/linux/namespaces/{i}") from None
        ctx.notes["network"] = "lo up"
