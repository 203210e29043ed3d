"""Stage `cgroup` (host side): create the container's cgroups, apply its limits, put it inside.

It runs first, while the container process (C1) is still blocked before unshare(2): everything it
forks is born inside the cgroups, and a new cgroup namespace gets the container's cgroup as root.
"""
from __future__ import annotations

from runtime.engine import HOST, Context, Stage
from runtime.errors import StageError


# Allowed after the config's own rules, as runc does: the default nodes, /dev/pts, tun, and
# mknod(2) of any node (access still needs a rule of its own).
DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": t, "major": ma, "minor": mi, "access": acc}
    for t, ma, mi, acc in [("c", -1, -1, "m"), ("b", -1, -1, "m"), ("c", 1, 3, "rwm"),
                           ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
                           ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"),
                           ("c", 5, 2, "rwm"), ("c", 136, -1, "rwm"), ("c", 10, 200, "rwm")]
]


def device_rules(ctx: Context) -> list[dict]:
    """The config's device rules, then the defaults and one allow rule per /linux/devices node."""
    rules = list((ctx.linux.get("resources") or {}).get("devices") or [])
    if not rules:
        return []
    rules += DEFAULT_DEVICE_RULES
    rules += [{"allow": True, "type": "c" if d["type"] == "u" else d["type"],
               "major": d.get("major", -1), "minor": d.get("minor", -1), "access": "rwm"}
              for d in ctx.linux.get("devices") or [] if d["type"] != "p"]
    return rules


class Cgroup(Stage):
    name = "cgroup"
    side = HOST
    summary = "create the container's cgroups, write its resource limits, move the process in"

    def describe(self, ctx: Context) -> str:
        path = ctx.linux.get("cgroupsPath") or f"/ocish/{ctx.id} (default from the id)"
        res = ctx.linux.get("resources") or {}
        lines = [self.summary + ".", f"cgroup path: {path} (config /linux/cgroupsPath)."]
        if res:
            lines.append("limits from config /linux/resources: " + ", ".join(sorted(res)) + ".")
        else:
            lines.append("no resource limits in config /linux/resources.")
        lines.append("then write the process's pid to cgroup.procs in every hierarchy.")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        # here, not at the top: a host stage, and the container side never needs the drivers
        from runtime import cgroups
        manager = cgroups.open_manager(ctx.linux.get("cgroupsPath"), ctx.id)
        resources = dict(ctx.linux.get("resources") or {})
        if resources.get("devices"):
            resources["devices"] = device_rules(ctx)
        self.join(ctx, manager, resources)

    def join(self, ctx: Context, manager, resources: dict) -> None:
        """Create the manager's cgroups, apply `resources`, move the container process in;
        a cgroup that still holds processes is refused before anything is made or recorded."""
        manager.refuse_busy()
        ctx.cgroup = manager
        if ctx.journal is not None:  # create's crash record: what the next lines will make
            ctx.journal("cgroup")
        try:
            manager.create()
        except OSError as e:
            raise StageError(self.name, "mkdir", str(manager.paths()), e.errno or 0,
                             "/linux/cgroupsPath") from None
        manager.apply(resources)
        try:
            manager.add(ctx.pid)
        except OSError as e:
            raise StageError(self.name, "join", "cgroup.procs", e.errno or 0,
                             "/linux/cgroupsPath") from None
