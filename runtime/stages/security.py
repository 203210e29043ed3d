"""Stages `seccomp`, `bounding` and `caps`: the container process's privileges, in runc's order.

    mounts ─► seccomp ─► pivot ─► process ─► paths ─► bounding ─► user ─► caps ─► exec
              compile the                             [load seccomp   setgroups  KEEPCAPS 0
              filter, connect                          if no NNP]     setresgid  capset(e, p, i)
              the listener                            drop bounding   setresuid  ambient
                                                      KEEPCAPS 1                 NO_NEW_PRIVS
                                                                       exec handoff: [load seccomp
                                                                       if NNP], open exec.fifo,
                                                                       execve

Why three stages: the user switch (stage `user`) sits in the middle of the capability work. The
bounding set must be dropped while CAP_SETPCAP is still effective, and KEEPCAPS set before
setresuid(2), or a switch away from uid 0 empties the permitted set; the final sets can only be
applied after it. `seccomp` only *prepares* the filter (libseccomp, all Python allocation done)
and runs before `pivot`, while listenerPath and the host's /proc are still reachable. Loading is
as late as the kernel allows: without no_new_privs it needs CAP_SYS_ADMIN, so `bounding` loads it
before anything is dropped, after hostname, sysctls and mounts are done (runc's order, so a
Docker-style profile may forbid sethostname or mount); with no_new_privs, exec's handoff loads it
right before it opens exec.fifo, leaving only the fifo wait and execve(2) under the filter.
"""
from __future__ import annotations

import errno
import os

from runtime import jsonfast
from runtime.defaults import OCI_VERSION
from runtime.engine import CONTAINER, Context, Stage, seccomp_module
from runtime.errors import SpecError, StageError
from runtime.linux import capabilities as C
from runtime.spec import cap_masks

# runtime.linux.seccomp (libseccomp) and runtime.spec_seccomp are imported by stage seccomp
# for a config that has /linux/seccomp (Seccomp.preload), by nobody else

CAPS_PTR = "/process/capabilities"


def _caps(ctx: Context) -> dict:
    """/process/capabilities; absent means every set empty, as in runc (all capabilities go)."""
    caps = ctx.process.get("capabilities")
    return caps if isinstance(caps, dict) else {}


def _masks(stage: str, caps: dict) -> dict[str, int]:
    try:
        return cap_masks(caps, CAPS_PTR)
    except SpecError as e:
        raise StageError(stage, "parse", "capabilities", 0, e.pointer, e.message) from None


def _nnp(ctx: Context) -> bool:
    return ctx.process.get("noNewPrivileges") is True


def _list(mask: int) -> str:
    return ", ".join(C.names(mask)) or "none"


class Bounding(Stage):
    name = "bounding"
    side = CONTAINER
    summary = "drop the capability bounding set and keep capabilities across the uid switch"
    ends_batch = True  # the seccomp filter loaded here without noNewPrivileges

    def describe(self, ctx: Context) -> str:
        caps = _caps(ctx)
        lines = []
        if not _nnp(ctx) and ctx.linux.get("seccomp") is not None:
            lines.append("load the seccomp filter now, while CAP_SYS_ADMIN is held: "
                         "noNewPrivileges is false (config /process/noNewPrivileges).")
        try:
            keep = cap_masks({"bounding": caps.get("bounding") or ()}, CAPS_PTR)["bounding"]
        except SpecError as e:
            return f"{self.summary}.\nconfig {e.pointer}: {e.message}."
        lines.append(f"keep in the bounding set: {_list(keep)} (config {CAPS_PTR}/bounding).")
        lines.append(f"prctl(PR_CAPBSET_DROP) every other capability: {_list(C.ALL & ~keep)}.")
        lines.append("prctl(PR_SET_KEEPCAPS, 1): the permitted set survives setresuid(2) in "
                     "stage user.")
        return "\n".join(lines)

    def exit_hint(self, ctx: Context) -> str:
        if ctx.linux.get("seccomp") is None or _nnp(ctx):
            return ""
        return ("the seccomp filter of /linux/seccomp, loaded here as /process/noNewPrivileges "
                "is false, may kill the runtime for a call it makes after loading it")

    def run(self, ctx: Context, item: str = "") -> None:
        masks = _masks(self.name, _caps(ctx))  # every set: an unknown name fails here, first
        if not _nnp(ctx) and (S := seccomp_module()) is not None and S.pending():
            try:
                S.load_prepared()
            except OSError as e:
                raise StageError(self.name, e.filename or "seccomp_load", "", e.errno or 0,
                                 "/linux/seccomp") from None
        try:
            ctx.notes["bounding_dropped"] = C.names(C.drop_bounding(masks["bounding"]))
        except OSError as e:
            raise StageError(self.name, "prctl PR_CAPBSET_DROP", e.filename or "",
                             e.errno or 0, CAPS_PTR + "/bounding") from None
        try:
            C.set_keepcaps(True)
        except OSError as e:
            raise StageError(self.name, "prctl PR_SET_KEEPCAPS", "1", e.errno or 0) from None


class Caps(Stage):
    name = "caps"
    side = CONTAINER
    summary = "set the effective, permitted, inheritable and ambient capabilities, and no_new_privs"

    def describe(self, ctx: Context) -> str:
        caps = _caps(ctx)
        lines = ["prctl(PR_SET_KEEPCAPS, 0)."]
        if "capabilities" not in ctx.process:
            lines.append("no /process/capabilities: every set is emptied, as runc does.")
        try:
            m = _masks(self.name, caps)
        except StageError as e:
            return f"{self.summary}.\n{e}."
        for s in ("effective", "permitted", "inheritable"):
            lines.append(f"capset {s}: {_list(m[s])} (config {CAPS_PTR}/{s}).")
        lines.append(f"ambient: clear, then raise {_list(m['ambient'])} "
                     f"(config {CAPS_PTR}/ambient).")
        skipped = m["ambient"] & ~(m["permitted"] & m["inheritable"])
        if skipped:
            lines.append(f"ambient {_list(skipped)} will be skipped: the kernel raises only "
                         f"capabilities both permitted and inheritable (runc skips them too).")
        if _nnp(ctx):
            lines.append("prctl(PR_SET_NO_NEW_PRIVS, 1) (config /process/noNewPrivileges).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        masks = _masks(self.name, _caps(ctx))
        try:
            C.set_keepcaps(False)
        except OSError as e:
            raise StageError(self.name, "prctl PR_SET_KEEPCAPS", "0", e.errno or 0) from None
        self._capset(masks)
        ctx.notes["ambient_skipped"] = self._ambient(masks)
        if _nnp(ctx):
            try:
                C.set_no_new_privs()
            except OSError as e:
                raise StageError(self.name, "prctl PR_SET_NO_NEW_PRIVS", "1", e.errno or 0,
                                 "/process/noNewPrivileges") from None

    def _capset(self, m: dict[str, int]) -> None:
        eff, prm, inh = m["effective"], m["permitted"], m["inheritable"]
        # the kernel says EPERM for all of these; say which capability and why
        _, held, _ = C.capget()
        why, ptr = "", CAPS_PTR
        if eff & ~prm:
            why, ptr = (f"effective capabilities must also be permitted: {_list(eff & ~prm)}",
                        CAPS_PTR + "/effective")
        elif prm & ~held:
            why, ptr = (f"not held by the runtime, so it cannot grant them: {_list(prm & ~held)}",
                        CAPS_PTR + "/permitted")
        if why:
            raise StageError(self.name, "capset", "", errno.EPERM, ptr, why)
        try:
            C.capset(eff, prm, inh)
        except OSError as e:
            detail = ""
            if e.errno == errno.EPERM and inh & ~C.bounding():
                detail = (f"inheritable capabilities must be in the bounding set: "
                          f"{_list(inh & ~C.bounding())}")
                ptr = CAPS_PTR + "/inheritable"
            raise StageError(self.name, "capset", "", e.errno or 0, ptr, detail) from None

    def _ambient(self, m: dict[str, int]) -> list[str]:
        """Clear the ambient set, raise the configured ones; like runc, a capability the kernel
        refuses (not both permitted and inheritable, or no ambient support) is skipped."""
        skipped = []
        try:
            C.ambient_clear()
        except OSError:
            return C.names(m["ambient"])
        for n in range(C.LAST_CAP + 1):
            if m["ambient"] >> n & 1:
                try:
                    C.ambient_raise(n)
                except OSError:
                    skipped.append(C.name(n))
        return skipped


class Seccomp(Stage):
    name = "seccomp"
    side = CONTAINER
    summary = "compile the seccomp profile into a filter, ready to load just before execve(2)"

    def preload(self, ctx: Context) -> list[str]:
        if ctx.linux.get("seccomp") is None:
            return []
        return ["runtime.linux.seccomp", "runtime.spec_seccomp"]

    def describe(self, ctx: Context) -> str:
        sc = ctx.linux.get("seccomp")
        if sc is None:
            return "no /linux/seccomp: no filter."
        from runtime.linux import seccomp as S
        from runtime.spec_seccomp import compile_profile
        try:
            prof = compile_profile(sc)
        except SpecError as e:
            return f"{self.summary}.\nconfig {e.pointer}: {e.message}."
        names = {r.name for r in prof.rules}
        lines = [f"compile /linux/seccomp with libseccomp {S.version()}: default action "
                 f"{S.action_name(prof.default_action)}, {len(prof.rules)} rules on "
                 f"{len(names)} syscalls (names this libseccomp does not know are skipped)."]
        if prof.arches:
            lines.append("architectures: " + ", ".join(a for a, _, _ in prof.arches) + ".")
        if prof.flags:
            lines.append("flags: " + ", ".join(f for f, _, _ in prof.flags) + ".")
        if prof.notify:
            lines.append(f"connect to the listener {prof.listener_path} now; it gets the notify "
                         f"fd once the filter is loaded (config /linux/seccomp/listenerPath).")
        if _nnp(ctx):
            lines.append("load it in exec's handoff, right before exec.fifo is opened (stage "
                         "exec tries those calls under it first, in a child).")
        else:
            lines.append("load it in stage bounding, before capabilities are dropped: without "
                         "noNewPrivileges the kernel wants CAP_SYS_ADMIN to load a filter.")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        if (S := seccomp_module()) is not None:
            S.discard()  # a filter prepared before in this process
        sc = ctx.linux.get("seccomp")
        if sc is None:
            return
        from runtime.linux import seccomp as S
        from runtime.spec_seccomp import compile_profile
        try:
            prof = compile_profile(sc)
        except SpecError as e:
            raise StageError(self.name, "parse", "profile", 0, e.pointer, e.message) from None
        pid = _host_pid()
        state = {"ociVersion": OCI_VERSION, "id": ctx.id, "status": "creating", "pid": pid,
                 "bundle": ctx.bundle}
        if ctx.spec.get("annotations"):
            state["annotations"] = ctx.spec["annotations"]
        payload = container_process_state(state, pid, prof.listener_metadata) \
            if prof.notify else b""
        try:
            prep = S.prepare(prof, payload)
        except S.SeccompError as e:
            raise StageError(self.name, e.op or "prepare", e.target or "profile", e.errno,
                             e.pointer, "" if e.errno else e.message) from None
        ctx.notes["seccomp_skipped"] = list(prep.filter.skipped)


def container_process_state(state: dict, pid: int, metadata: str) -> bytes:
    """runtime-spec's containerProcessState, sent with the notify fd to the seccomp listener."""
    return jsonfast.dumps({"ociVersion": state.get("ociVersion", ""), "fds": ["seccompFd"],
                           "pid": pid, "metadata": metadata, "state": state}).encode()


def _host_pid() -> int:
    """Our pid as the runtime (and a seccomp listener) sees it: /proc is still the host's here."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()
