"""Stages `cgroup` and `limits` (host side): the container's cgroups, then its resource limits.

    cgroup ─► unshare ─► idmap ─► lsm ─► mounts ─► limits ─► hooks ─► ...
    mkdir the cgroups,                              write /linux/resources into them
    move C1 in                                      (init exists, the runtime's forks are done)

`cgroup` runs first, while the container process (C1) is still blocked before unshare(2):
everything it forks is born inside the cgroups, and a new cgroup namespace gets the container's
cgroup as root. The limits wait until the init exists and the mounts are made, as runc's
manager.Set waits for its init's procHooks sync (Apply at start, Set before the prestart hooks,
so hooks see them): the runtime's own setup (C1 forking the init, the interpreter's memory) is
never held to a pids limit of 1 or a 4 MiB memory limit meant for the program.
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
    summary = "create the container's cgroups and move the process in"

    def describe(self, ctx: Context) -> str:
        path = ctx.linux.get("cgroupsPath") or f"/ocish/{ctx.id} (default from the id)"
        return "\n".join([self.summary + ".", f"cgroup path: {path} (config /linux/cgroupsPath).",
                          "write the process's pid to cgroup.procs in every hierarchy; the "
                          "limits come later, in stage limits."])

    def resources(self, ctx: Context) -> dict:
        """What stage `limits` writes: config /linux/resources, device rules completed."""
        resources = dict(ctx.linux.get("resources") or {})
        if resources.get("devices"):
            resources["devices"] = device_rules(ctx)
        return resources

    def run(self, ctx: Context, item: str = "") -> None:
        # here, not at the top: a host stage, and the container side never needs the drivers
        from runtime import cgroups
        self.join(ctx, cgroups.open_manager(ctx.linux.get("cgroupsPath"), ctx.id))

    def join(self, ctx: Context, manager) -> None:
        """Create the manager's cgroups and move the container process in."""
        ctx.cgroup = manager
        if ctx.journal is not None:  # create's crash record: what the next lines will make
            ctx.journal("cgroup")
        try:
            manager.create()
        except OSError as e:
            raise StageError(self.name, "mkdir", str(manager.paths()), e.errno or 0,
                             "/linux/cgroupsPath") from None
        try:
            manager.add(ctx.pid)
        except OSError as e:
            raise StageError(self.name, "join", "cgroup.procs", e.errno or 0,
                             "/linux/cgroupsPath") from None


class Limits(Stage):
    """Stage `limits`: write the resources `cgroup` (the stage given) chose into its cgroups."""
    name = "limits"
    side = HOST
    summary = "write the container's resource limits into its cgroups"

    def __init__(self, cgroup: Cgroup) -> None:
        self.cgroup = cgroup

    def describe(self, ctx: Context) -> str:
        res = self.cgroup.resources(ctx)
        if not res:
            return "no resource limits in config /linux/resources: nothing to write."
        return (f"{self.summary}: " + ", ".join(sorted(res)) + " (config /linux/resources).\n"
                "now, not in stage cgroup: the init exists and the runtime's own setup is done "
                "with forking, as runc writes them before its prestart hooks.")

    def run(self, ctx: Context, item: str = "") -> None:
        if ctx.cgroup is None:  # a rootless container without a delegated cgroup
            return
        try:
            ctx.cgroup.apply(self.cgroup.resources(ctx))
        except StageError as e:  # the drivers name their own stage; the step is this one
            raise StageError(self.name, e.op, e.target, e.errno, e.pointer, e.detail) from None
