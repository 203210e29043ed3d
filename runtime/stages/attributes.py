"""Stages `lsm` and `attributes`: security modules, personality, I/O priority and scheduler.

    unshare ─► idmap ─► lsm ─► mounts ─► ... ─► pivot ─► process ─► paths ─► attributes ─► bounding ...
                        check that the host            personality(2), ioprio_set(2),
                        runs AppArmor / SELinux        sched_setattr(2), and the AppArmor
                        if the config names them;      profile / SELinux label for the
                        mountLabel -> context= on      next execve(2)
                        the filesystems mounted next

`lsm` runs before anything is mounted, while the host's /sys is still in view, so a config naming
a module this host does not run fails at once with nothing to undo but the process. `attributes`
runs where runc sets the same things: after the rootfs is final, while the process is still root
with every capability (a realtime policy, a negative nice value and the RT I/O class need
CAP_SYS_NICE or CAP_SYS_ADMIN) and before any seccomp filter is loaded. Each attribute survives
setresuid(2) and execve(2); the LSM label is written last and applies *at* the execve(2).
"""
from __future__ import annotations

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import lsm
from runtime.linux import syscalls as S

# runtime-spec /linux/personality
DOMAINS = {"LINUX": S.PER_LINUX, "LINUX32": S.PER_LINUX32}
PERSONALITY_FLAGS = {  # <linux/personality.h>
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {  # <uapi/linux/sched.h>
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
_RT = ("SCHED_FIFO", "SCHED_RR")
# filesystems runc gives the mount label: not binds, proc, sysfs, mqueue or cgroups
_UNLABELLED = ("bind", "proc", "sysfs", "mqueue", "cgroup", "cgroup2")


def _lsm_wants(ctx: Context, container_wide: bool = True) -> list[tuple[str, str, str, str]]:
    """(module, what, value, pointer) for each LSM setting of the config."""
    out = []
    if ctx.process.get("apparmorProfile"):
        out.append(("apparmor", "apparmor profile", ctx.process["apparmorProfile"],
                    "/process/apparmorProfile"))
    if ctx.process.get("selinuxLabel"):
        out.append(("selinux", "selinux label", ctx.process["selinuxLabel"], "/process/selinuxLabel"))
    if container_wide and ctx.linux.get("mountLabel"):
        out.append(("selinux", "mount label", ctx.linux["mountLabel"], "/linux/mountLabel"))
    return out


def labelled_mounts(ctx: Context) -> list[int]:
    """Indexes of the mounts that get /linux/mountLabel as a context= option."""
    return [i for i, m in enumerate(ctx.spec.get("mounts") or [])
            if (m.get("type") or "bind") not in _UNLABELLED
            and not {"bind", "rbind"} & set(m.get("options") or [])]


def _check_module(stage: str, module: str, what: str, value: str, ptr: str) -> None:
    ok, evidence = lsm.enabled(module)
    if not ok:
        raise StageError(stage, what, f'"{value}"', 0, ptr, lsm.not_enabled(module, evidence))


class Lsm(Stage):
    name = "lsm"
    side = CONTAINER
    summary = "check the host runs the security modules the config names; label the mounts"

    def __init__(self, container_wide: bool = True) -> None:
        # False for `exec`: the mount label belongs to the container's own mounts, made once
        self.container_wide = container_wide

    def describe(self, ctx: Context) -> str:
        wants = _lsm_wants(ctx, self.container_wide)
        if not wants:
            return ("no /process/apparmorProfile, /process/selinuxLabel or /linux/mountLabel: "
                    "nothing to check.")
        lines = [self.summary + "."]
        for module, what, value, ptr in wants:
            ok, evidence = lsm.enabled(module)
            lines.append(f"{what} {value!r} (config {ptr}) needs {lsm.NAMES[module]}: "
                         + ("enabled here." if ok else f"not enabled here ({evidence}): "
                                                         "this stage will fail."))
        if self.container_wide and ctx.linux.get("mountLabel"):
            dests = [ctx.spec["mounts"][i]["destination"] for i in labelled_mounts(ctx)]
            lines.append(f"add {lsm.mount_label_option(ctx.linux['mountLabel'])} to the options of: "
                         + (", ".join(dests) or "no mount") + " (config /mounts).")
        if any(w[0] == "apparmor" or w[1] == "selinux label" for w in wants):
            lines.append("the profile or label itself is set in stage attributes, "
                         "for the execve(2) of the container process.")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        checked = []
        for module, what, value, ptr in _lsm_wants(ctx, self.container_wide):
            _check_module(self.name, module, what, value, ptr)
            checked.append(module)
        ctx.notes["lsm_checked"] = checked
        label = self.container_wide and ctx.linux.get("mountLabel")
        if label:
            option = lsm.mount_label_option(label)
            for i in labelled_mounts(ctx):  # this process's copy of the spec: stage mounts reads it
                m = ctx.spec["mounts"][i]
                m["options"] = list(m.get("options") or []) + [option]


class Attributes(Stage):
    name = "attributes"
    side = CONTAINER
    summary = "set the personality, I/O priority, scheduler and LSM label of the process"

    def __init__(self, container_wide: bool = True) -> None:
        # False for `exec`: /linux/personality and the mount label belong to the container
        self.container_wide = container_wide

    def items(self, ctx: Context) -> list[str]:
        out = []
        if self.container_wide and ctx.linux.get("personality"):
            out.append("personality")
        for key in ("ioPriority", "scheduler"):
            if ctx.process.get(key):
                out.append(key)
        if any(w[1] != "mount label" for w in _lsm_wants(ctx, False)):
            out.append("label")
        return out

    def describe(self, ctx: Context) -> str:
        items = self.items(ctx)
        if not items:
            return ("no /linux/personality, /process/ioPriority, /process/scheduler, "
                    "/process/apparmorProfile or /process/selinuxLabel: nothing to set.")
        lines = [self.summary + "."]
        p = ctx.process
        if "personality" in items:
            pers = ctx.linux["personality"]
            flags = pers.get("flags") or []
            lines.append(f"personality(2) {pers.get('domain')}" + (f" | {' | '.join(flags)}" if flags else "")
                         + " (config /linux/personality).")
        if "ioPriority" in items:
            io = p["ioPriority"]
            lines.append(f"ioprio_set(2) {io.get('class')} priority {io.get('priority', 0)} "
                         f"(config /process/ioPriority).")
        if "scheduler" in items:
            s = p["scheduler"]
            extra = ", ".join(f"{k} {s[k]}" for k in ("nice", "priority", "runtime", "deadline", "period")
                              if k in s)
            lines.append(f"sched_setattr(2) {s.get('policy')}" + (f", {extra}" if extra else "")
                         + (f", flags {' | '.join(s['flags'])}" if s.get("flags") else "")
                         + " (config /process/scheduler).")
        if "label" in items:
            for module, what, value, ptr in _lsm_wants(ctx, False):
                where = lsm.apparmor_exec_path() if module == "apparmor" else lsm.ATTR_EXEC
                data = f"exec {value}" if module == "apparmor" else value
                lines.append(f"write {data!r} to {where}: the {what} applies at execve(2) "
                             f"(config {ptr}).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        for step in [item] if item else self.items(ctx):
            getattr(self, "_" + step.lower())(ctx)

    # -- personality ----------------------------------------------------------------------------
    def _personality(self, ctx: Context) -> None:
        pers = ctx.linux["personality"]
        ptr = "/linux/personality"
        if pers.get("domain") not in DOMAINS:
            raise StageError(self.name, "personality", str(pers.get("domain")), 0, ptr + "/domain",
                             "domain must be one of " + ", ".join(DOMAINS))
        value = DOMAINS[pers["domain"]]
        for i, flag in enumerate(pers.get("flags") or []):
            if flag not in PERSONALITY_FLAGS:
                raise StageError(self.name, "personality", str(flag), 0, f"{ptr}/flags/{i}",
                                 "unknown personality flag: use one of "
                                 + ", ".join(PERSONALITY_FLAGS))
            value |= PERSONALITY_FLAGS[flag]
        try:
            ctx.sys.personality(value)
        except OSError as e:
            raise StageError(self.name, "personality", hex(value), e.errno or 0, ptr) from None
        ctx.notes["personality"] = value

    # -- I/O priority ---------------------------------------------------------------------------
    def _iopriority(self, ctx: Context) -> None:
        io = ctx.process["ioPriority"]
        ptr = "/process/ioPriority"
        cls = io.get("class")
        if cls not in IOPRIO_CLASSES:
            raise StageError(self.name, "ioprio_set", str(cls), 0, ptr + "/class",
                             "class must be one of " + ", ".join(IOPRIO_CLASSES))
        prio = io.get("priority", 0)
        try:
            ctx.sys.ioprio_set(IOPRIO_CLASSES[cls], prio)
        except OSError as e:
            detail = ""
            if e.errno == 1:
                detail = "operation not permitted: IOPRIO_CLASS_RT needs CAP_SYS_ADMIN or CAP_SYS_NICE"
            raise StageError(self.name, "ioprio_set", f"{cls} priority {prio}", e.errno or 0, ptr,
                             detail) from None

    # -- scheduler ------------------------------------------------------------------------------
    def _scheduler(self, ctx: Context) -> None:
        s = ctx.process["scheduler"]
        ptr = "/process/scheduler"
        policy = s.get("policy")
        if policy not in SCHED_POLICIES:
            raise StageError(self.name, "sched_setattr", str(policy), 0, ptr + "/policy",
                             "policy must be one of " + ", ".join(SCHED_POLICIES))
        flags = 0
        for i, flag in enumerate(s.get("flags") or []):
            if flag not in SCHED_FLAGS:
                raise StageError(self.name, "sched_setattr", str(flag), 0, f"{ptr}/flags/{i}",
                                 "unknown scheduler flag: use one of " + ", ".join(SCHED_FLAGS))
            flags |= SCHED_FLAGS[flag]
        try:
            ctx.sys.sched_setattr(SCHED_POLICIES[policy], flags, s.get("nice", 0), s.get("priority", 0),
                                  s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0))
        except OSError as e:
            raise StageError(self.name, "sched_setattr", policy, e.errno or 0, ptr,
                             _sched_why(policy, s, e.errno or 0)) from None

    # -- LSM label ------------------------------------------------------------------------------
    def _label(self, ctx: Context) -> None:
        checked = ctx.notes.get("lsm_checked") or []
        for module, what, value, ptr in _lsm_wants(ctx, False):
            if module not in checked:  # `exec`, or a debugger that skipped stage lsm
                _check_module(self.name, module, what, value, ptr)
            try:
                if module == "apparmor":
                    lsm.set_apparmor_exec(value, ctx.sys)
                else:
                    lsm.set_selinux_exec(value, ctx.sys)
            except OSError as e:
                where = lsm.apparmor_exec_path() if module == "apparmor" else lsm.ATTR_EXEC
                raise StageError(self.name, f"write {where}", f'{what} "{value}"', e.errno or 0,
                                 ptr) from None


def _sched_why(policy: str, s: dict, err: int) -> str:
    if err == 1:  # EPERM
        if policy in _RT or policy == "SCHED_DEADLINE":
            return ("operation not permitted: a realtime policy needs CAP_SYS_NICE and, where the "
                    "kernel groups realtime time (cpu.rt_runtime_us), a realtime runtime for the "
                    "container's cgroup (config /linux/resources/cpu/realtimeRuntime)")
        if s.get("nice", 0) < 0:
            return "operation not permitted: a negative nice value needs CAP_SYS_NICE"
    if err == 22 and policy == "SCHED_ISO":  # EINVAL
        return "invalid argument: SCHED_ISO is reserved, Linux does not implement it"
    if err == 16 and policy == "SCHED_DEADLINE":  # EBUSY
        return "device or resource busy: the kernel's deadline admission control refused it"
    return ""
