"""Stage `idmap` (host side): write the new user namespace's uid_map and gid_map.

A process cannot map ids for itself beyond its own: the host side, privileged in the parent user
namespace, writes /proc/<init>/{uid,gid}_map while the container waits.
"""
from __future__ import annotations

import os

from runtime.engine import HOST, Context, Stage
from runtime.errors import StageError
from runtime.stages.unshare import has_new


def map_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


class Idmap(Stage):
    name = "idmap"
    side = HOST
    summary = "write the user namespace's uid and gid maps"

    def describe(self, ctx: Context) -> str:
        if not has_new(ctx, "user"):
            return "no new user namespace (config /linux/namespaces): nothing to map."
        return (f"{self.summary} for the container process:\n"
                f"uid_map (config /linux/uidMappings):\n{map_text(ctx.linux.get('uidMappings') or [])}"
                f"gid_map (config /linux/gidMappings):\n{map_text(ctx.linux.get('gidMappings') or [])}"
                + ("unprivileged runtime: a map of your own id alone is written directly (gid_map "
                   "after \"deny\" to setgroups), a wider one by newuidmap/newgidmap."
                   if os.geteuid() != 0 else "")).rstrip()

    def run(self, ctx: Context, item: str = "") -> None:
        if not has_new(ctx, "user"):
            return
        if os.geteuid() != 0:  # rootless: own id directly, more through newuidmap/newgidmap
            from runtime import rootless
            rootless.write_maps(ctx, self.name)
            return
        for kind in ("uid", "gid"):
            key = f"{kind}Mappings"
            target = f"/proc/{ctx.pid}/{kind}_map"
            try:
                ctx.sys.write_file(target, map_text(ctx.linux.get(key) or []))
            except OSError as e:
                raise StageError(self.name, "write", target, e.errno or 0, f"/linux/{key}") from None
