"""Stages `hooks` and `container-hooks`: the OCI hooks that belong to `create`.

    ... mounts ─► hooks (host) ─────────────► container-hooks (container) ─► seccomp ─► pivot ...
                  prestart, createRuntime:     createContainer: spawned by init, so in the
                  spawned by the runtime, in   container's namespaces (its mount namespace
                  the runtime namespace, with  included), path resolved before pivot_root,
                  the container's namespaces   i.e. in the runtime's view of the filesystem;
                  and mounts already made;     cwd: the rootfs
                  cwd: the bundle

Both stages run "after the runtime environment has been created and before pivot_root", the moment
runc runs them (its procHooks sync inside prepareRootfs). The other kinds are not part of `create`:
startContainer runs in exec's handoff, poststart in `start`, poststop in `delete` (see
runtime/hooks.py, which also runs every hook).
"""
from __future__ import annotations

import os

from runtime.engine import CONTAINER, HOST, Context, Stage

# runtime.hooks is imported where it is used: a container side without hooks never loads it.
# The container side preloads it (ContainerHooks.preload): by the time stage container-hooks
# runs, a user namespace may have made the host's Python files unreadable.

HOST_KINDS = ("prestart", "createRuntime")


def _describe(ctx: Context, kinds: tuple, where: str) -> str:
    from runtime import hooks
    lines = []
    for kind in kinds:
        for i, h in enumerate(hooks.hooks_of(ctx.spec, kind)):
            lines.append(f"{kind}/{i}: {hooks.describe(h)} (config /hooks/{kind}/{i}).")
    if not lines:
        return f"no {' or '.join(kinds)} hooks (config /hooks): nothing to do."
    return "\n".join([f"run, {where}, with the container state (status \"creating\") on stdin:"]
                     + lines)


class Hooks(Stage):
    name = "hooks"
    side = HOST
    summary = "run the prestart and createRuntime hooks in the runtime namespace"

    def items(self, ctx: Context) -> list[str]:
        from runtime import hooks
        return [k for k in HOST_KINDS if hooks.hooks_of(ctx.spec, k)]

    def describe(self, ctx: Context) -> str:
        return _describe(ctx, HOST_KINDS, f"from the runtime on the host, in {ctx.bundle}")

    def run(self, ctx: Context, item: str = "") -> None:
        from runtime import hooks
        st = None
        for kind in (item,) if item else HOST_KINDS:
            todo = hooks.hooks_of(ctx.spec, kind)
            if not todo:
                continue
            st = st or hooks.state(ctx.id, "creating", ctx.pid, ctx.bundle, ctx.spec.get("annotations"))
            try:
                hooks.run_all(kind, todo, st, cwd=ctx.bundle)  # runc: create chdirs there
            except hooks.HookError as err:
                raise err.stage_error(self.name) from None


class ContainerHooks(Stage):
    name = "container-hooks"
    side = CONTAINER
    summary = "run the createContainer hooks inside the container's namespaces, before pivot_root"

    def items(self, ctx: Context) -> list[str]:
        from runtime import hooks
        return ["createContainer"] if hooks.hooks_of(ctx.spec, "createContainer") else []

    def preload(self, ctx: Context) -> list[str]:
        return ["runtime.hooks"] if (ctx.spec.get("hooks") or {}).get("createContainer") else []

    def describe(self, ctx: Context) -> str:
        return _describe(ctx, ("createContainer",),
                         f"from the container's init, in its namespaces, in {ctx.rootfs}")

    def run(self, ctx: Context, item: str = "") -> None:
        # Our pid as the host sees it, while /proc is still the host's: the state that the
        # createContainer and (after pivot_root) startContainer hooks get must name it.
        ctx.pid = _host_pid()
        todo = (ctx.spec.get("hooks") or {}).get("createContainer")
        if not todo:
            return
        from runtime import hooks  # preloaded
        st = hooks.state(ctx.id, "creating", ctx.pid, ctx.bundle, ctx.spec.get("annotations"))
        try:
            # the channel: a runtime killed meanwhile must not leave the hook running;
            # in the rootfs, as runc's prepareRootfs runs them
            hooks.run_all("createContainer", todo, st, cwd=ctx.rootfs,
                          watch_fd=ctx.chan.fileno() if ctx.chan is not None else -1)
        except hooks.HookError as err:
            raise err.stage_error(self.name) from None


def _host_pid() -> int:
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()
