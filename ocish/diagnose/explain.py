"""Turn what went wrong into a cause and a fix.

Three sources meet here:

- lint's SpecErrors (`spec_finding`): the pointer and message of runtime/spec.py, with a fix
  read from the kind of message (remove a sysctl that is not namespaced, add the namespace a
  setting needs, the closest known name for an unknown one ...);
- the dry run's outcome (`outcome_findings`): a StageError (stage, op, errno, pointer), or a
  death (during setup, at `start`, or within the window after it) told by its wait status, the
  cgroup's counters (an OOM kill, refused forks), the process's last stderr lines and, on a
  traced re-run, its last system call;
- preflight's predictions: a dry-run failure that a preflight finding predicted confirms it (the
  finding keeps its richer cause and gains the runtime's stage, operation, errno and message);
  one that nothing predicted is explained from the table in `_stage_finding`.

A container that started healthy demotes preflight's errors to warnings: the dry run is what
counts.
"""
from __future__ import annotations

import difflib
import errno
import json
import os
import shlex

from ocish.diagnose.model import (DRYRUN, ERROR, LINT, WARNING, Finding, Fix, Outcome,
                                  append_ops, resolve_pointer)
from ocish.diagnose.seccomp_check import unblock
from runtime.engine import SECCOMP_CAUSE

MIB = 1024 * 1024
# "no such file or directory" -> ENOENT, to read errnos out of messages
_BY_TEXT = {os.strerror(n).lower(): n for n in errno.errorcode}


def errno_of(text: str) -> int:
    """The errno whose strerror ends `text` ("... exec /x: no such file or directory")."""
    text = text.strip().lower()
    hits = [(len(words), n) for words, n in _BY_TEXT.items() if text.endswith(words)]
    return max(hits)[1] if hits else 0


# ---------------------------------------------------------------------------------------------
# lint

def spec_finding(pointer: str, message: str, spec: dict, rootfs: str | None = None) -> Finding:
    """A SpecError as a finding, with the config edit that answers it; a path it proposes is
    checked where it will be looked up (the rootfs, when given, or the host)."""
    found, value = resolve_pointer(spec, pointer)
    code, fix = _spec_fix(pointer, message, value if found else None, spec, rootfs)
    evidence = [f"config.json {pointer or '/'} = {_short(value)}"] if found else \
        [f"config.json has no {pointer}"]
    return Finding(code, ERROR, LINT, f"config {pointer or '/'}: {message}", message, "validate",
                   "validate", 0, pointer, evidence, fix)


def _value_fix(ptr: str, msg: str, value, spec: dict) -> tuple[str, Fix] | None:
    """The edit for a SpecError whose right value is clear from the config itself: the later of
    two duplicates removed, a value clamped into its range, the limit a swap or a soft limit
    must reach, the known name closest to an unknown one; None for the others."""
    from runtime import spec as specmod
    parts = ptr.split("/")
    parent = "/".join(parts[:-1])
    if msg.startswith(("duplicate namespace", "duplicate rlimit")):
        return "config-duplicate", Fix(f"remove {parent}, the later of the two",
                                       [{"op": "remove", "path": parent}])
    if "must not exceed hard limit" in msg and parts[-1] == "soft":
        hard = resolve_pointer(spec, parent + "/hard")[1]
        kind = resolve_pointer(spec, parent + "/type")[1]
        from runtime.stages.exec import Exec
        if kind == "RLIMIT_NOFILE" and isinstance(hard, int) and 0 <= hard < Exec.MIN_NOFILE:
            # lowered, the soft limit would leave the runtime no fd for exec.fifo's open
            up = max(value, Exec.MIN_NOFILE)
            return "rlimit-soft-above-hard", Fix(
                f"raise the hard limit to {up}",
                [{"op": "replace", "path": parent + "/hard", "value": up}]
                + ([{"op": "replace", "path": ptr, "value": up}] if value < up else []))
        return "rlimit-soft-above-hard", Fix(f"lower the soft limit to the hard limit {hard}",
                                             [{"op": "replace", "path": ptr, "value": hard}])
    if ptr.startswith("/process/rlimits/") and parts[-1] == "type" and "RLIMIT_" in msg:
        have = {r.get("type") for r in (spec.get("process") or {}).get("rlimits") or []
                if isinstance(r, dict)}
        names = {n.removeprefix("RLIMIT_"): n for n in specmod.RLIMITS - have}
        close = difflib.get_close_matches(str(value).upper().removeprefix("RLIMIT_"),
                                          sorted(names), 1, 0.7)  # the names, not the prefix
        if close:
            name = names[close[0]]
            return "rlimit-unknown", Fix(f"did you mean {name}?",
                                         [{"op": "replace", "path": ptr, "value": name}])
        return "rlimit-unknown", Fix(f"remove {parent}", [{"op": "remove", "path": parent}])
    if ptr == "/linux/resources/memory/swap" and "memory+swap limit must be at least" in msg:
        limit = resolve_pointer(spec, "/linux/resources/memory/limit")[1]
        return "memory-swap-below-limit", Fix(f"raise the swap limit (memory+swap) to the memory "
                                              f"limit {limit} (or -1: no limit)",
                                              [{"op": "replace", "path": ptr, "value": limit}])
    if ptr.startswith("/process/env/") and '"KEY=value"' in msg and isinstance(value, str):
        if value and not value.startswith("="):
            return "env-no-equals", Fix(f"set it to the empty string: {value}=",
                                        [{"op": "replace", "path": ptr, "value": value + "="}])
        return "env-no-equals", Fix("remove it (a variable needs a name)",
                                    [{"op": "remove", "path": ptr}])
    if ptr == "/process/oomScoreAdj" and "from -1000 to 1000" in msg and type(value) is int:
        near = min(max(value, -1000), 1000)
        own = _own_oom_score_adj()
        if near < own:  # lowering below the runtime's own needs CAP_SYS_RESOURCE (preflight)
            near = own
        return "oom-score-adj-range", Fix(f"use {near}, the nearest the kernel (and this "
                                          "runtime) takes", [{"op": "replace", "path": ptr,
                                                              "value": near}])
    if ptr.startswith("/linux/resources/blockIO/") and parts[-1] in ("weight", "leafWeight") \
            and "from 10 to 1000" in msg and type(value) is int:
        near = min(max(value, 10), 1000)
        return "blkio-weight-range", Fix(f"use {near}, the nearest the kernel takes",
                                         [{"op": "replace", "path": ptr, "value": near}])
    if ptr == "/ociVersion" and msg.startswith("unsupported version"):
        from runtime.defaults import OCI_VERSION
        return "oci-version", Fix(f"use {OCI_VERSION}, the runtime-spec version this runtime "
                                  "implements", [{"op": "replace", "path": ptr,
                                                  "value": OCI_VERSION}])
    return None


def _own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1000


def _absolute_fix(ptr: str, path: str, spec: dict, rootfs: str | None) -> Fix:
    """The relative path made absolute, as a fix that works: the cwd must exist in the rootfs
    (the runtime does not make it: "and create it", with the command), a hook program or a
    namespace file on the host; a mount destination is made by the runtime."""
    patch = [{"op": "replace", "path": ptr, "value": path}]
    if ptr == "/process/cwd" and rootfs:
        from ocish.diagnose.rootview import RootView
        loc = RootView(rootfs, "", spec.get("mounts") or []).resolve(path)
        if loc.exists and os.path.isdir(loc.host):
            return Fix(f"make it absolute: {path}", patch)
        if loc.host is None:  # under a mount made at run time: its content is not known
            return Fix(f"make it absolute: {path} (under a mount made at run time: make sure "
                       "it is there)", patch)
        import shlex
        return Fix(f"make it absolute: {path}, and create it in the rootfs (or use \"/\")",
                   patch, command=f"mkdir -p {shlex.quote(rootfs.rstrip('/') + loc.path)}")
    if ptr.startswith(("/hooks/", "/linux/namespaces/")) and not os.path.exists(path):
        return Fix("make it absolute: the full path on the host (" + path + " does not exist)")
    return Fix(f"make it absolute: {path}", patch)


def _spec_fix(ptr: str, msg: str, value, spec: dict, rootfs: str | None = None
              ) -> tuple[str, Fix]:
    if "is not namespaced" in msg:
        return "sysctl-not-namespaced", Fix("remove it: a container may only set sysctls of "
                                            "namespaces it owns", [{"op": "remove", "path": ptr}])
    if "unknown capability" in msg:
        from runtime.linux.capabilities import NUMBERS
        close = difflib.get_close_matches(str(value).upper(), list(NUMBERS), 1, 0.7)
        if close:
            return "capability-unknown", Fix(f"did you mean {close[0]}?",
                                             [{"op": "replace", "path": ptr, "value": close[0]}])
        return "capability-unknown", Fix("remove it", [{"op": "remove", "path": ptr}])
    if "namespace file" in msg:
        code = "namespace-path-missing" if "does not exist" in msg else \
            "namespace-path-unreadable"
        return code, Fix(
            "point it at an existing namespace (/proc/<pid>/ns/<kind> of a running process), or "
            "drop the path to create a new namespace", [{"op": "remove", "path": ptr}])
    if "add {" in msg and "to /linux/namespaces" in msg and \
            ptr in ("/linux/uidMappings", "/linux/gidMappings"):
        # a user namespace added would need both maps and a rootfs its root can reach: the
        # edit that surely gives a config create takes is the maps' removal
        linux = spec.get("linux") or {}
        return "namespace-needed", Fix("remove the id maps (or add a user namespace, "
                                       '{"type": "user"}, with both maps)',
                                       [{"op": "remove", "path": f"/linux/{k}"}
                                        for k in ("uidMappings", "gidMappings") if k in linux])
    if "add {" in msg and "to /linux/namespaces" in msg:
        kind = msg.split('"type": "', 1)[1].split('"', 1)[0]
        return "namespace-needed", Fix(f"add a {kind} namespace",
                                       append_ops(spec, "/linux/namespaces", {"type": kind}))
    if "must be an absolute path" in msg and isinstance(value, str):
        return "path-relative", _absolute_fix(ptr, "/" + value.lstrip("./"), spec, rootfs)
    if "is not mapped by" in msg:
        maps = (spec.get("linux") or {}).get("uidMappings" if "uid" in ptr else "gidMappings")
        if isinstance(maps, list) and maps and isinstance(maps[0], dict):
            inside = maps[0].get("containerID", 0)
            return "userns-unmapped", Fix(f"run as an id the namespace maps, e.g. {inside} (or "
                                          "add a mapping for this one)",
                                          [{"op": "replace", "path": ptr, "value": inside}])
    if "needs uid mappings" in msg or "needs gid mappings" in msg:
        return "userns-no-mappings", Fix("map the container's ids to a host range",
                                         [{"op": "add", "path": ptr, "value": [
                                             {"containerID": 0, "hostID": 100000,
                                              "size": 65536}]}])
    if ptr == "/linux/resources/memory/limit" and "the runtime's own setup" in msg:
        return "memory-limit-too-low", Fix("give the container room for the runtime's setup and "
                                           "its program, e.g. 64 MiB" + _swap_too(spec, 64 * MIB),
                                           raise_memory(spec, 64 * MIB))
    if ptr == "/linux/resources/cpu/shares" and "the kernel's range" in msg and \
            isinstance(value, int):
        from runtime.spec import CPU_SHARES_MAX, CPU_SHARES_MIN
        near = min(max(value, CPU_SHARES_MIN), CPU_SHARES_MAX)
        return "cpu-shares-range", Fix(f"use {near}, the nearest the kernel takes (1024 is the "
                                       "default weight)",
                                       [{"op": "replace", "path": ptr, "value": near}])
    if ptr in ("/linux/resources/cpu/period", "/linux/resources/cpu/quota") and \
            "the kernel's bounds" in msg and isinstance(value, int):
        from runtime.spec import CFS_PERIOD_MAX, CFS_PERIOD_MIN, CFS_QUOTA_MAX, CFS_QUOTA_MIN
        lo, hi = (CFS_PERIOD_MIN, CFS_PERIOD_MAX) if ptr.endswith("period") else \
            (CFS_QUOTA_MIN, CFS_QUOTA_MAX)
        near = min(max(value, lo), hi)
        return "cpu-bandwidth-range", Fix(f"use {near}, the nearest the kernel takes (in "
                                          "microseconds)",
                                          [{"op": "replace", "path": ptr, "value": near}])
    found = _value_fix(ptr, msg, value, spec)
    if found is not None:
        return found
    if "rootfs" in msg and ptr == "/root/path":
        return "rootfs-missing", Fix("unpack the image into the rootfs directory, or point "
                                     "/root/path at it")
    if "expected one of" in msg or "must be one of" in msg:
        options = msg.rsplit("one of", 1)[1].split(", got ", 1)[0].replace(" ", "").split(",")
        parts = ptr.split("/")
        if parts[1:3] == ["linux", "namespaces"] and parts[-1] == "type":
            # a namespace the config has already is no answer (a duplicate)
            have = {n.get("type") for n in (spec.get("linux") or {}).get("namespaces") or []
                    if isinstance(n, dict)}
            options = [o for o in options if o not in have]
            close = difflib.get_close_matches(str(value), options, 1, 0.6)
            if not close:
                entry = "/".join(parts[:-1])
                return "config-invalid", Fix(f"remove {entry} (no namespace type is like "
                                             f"{value!r})", [{"op": "remove", "path": entry}])
        close = difflib.get_close_matches(str(value), options, 1, 0.6)
        if close:
            return "config-invalid", Fix(f"did you mean {close[0]!r}?",
                                         [{"op": "replace", "path": ptr, "value": close[0]}])
    return "config-invalid", Fix(f"edit {ptr or 'config.json'}: {msg}")


# ---------------------------------------------------------------------------------------------
# the dry run

def outcome_findings(out: Outcome, spec: dict, rootfs: str, predicted: list[Finding],
                     bundle: str = ".") -> list[Finding]:
    """Findings for the dry run's outcome; confirms (mutates) the preflight findings that
    predicted it and returns the ones nobody predicted. `bundle`: the bundle's path, for the
    commands a fix names."""
    if out.phase == "not run":
        return []
    if out.healthy:
        for f in predicted:
            # the dry run's container side (the debugger's) holds one descriptor fewer than
            # create's: its start does not clear a nofile limit that create refuses
            if f.severity == ERROR and f.code != "rlimit-nofile-too-low":
                f.severity = WARNING
                f.evidence.append("dry run: the container started anyway "
                                  f"({out.summary()}), so this did not stop it")
        return _pressure(out)
    found = _explain(out, spec, rootfs, bundle)
    if found is None:
        return []
    match = next((f for f in predicted if f.severity == ERROR and _matches(f, found, out)), None)
    if match is None:
        return [found]
    match.confirmed = True
    if found.stage and (out.error or match.stage != "exec"):
        match.stage, match.op = found.stage, found.op or match.op
    match.errno = found.errno or match.errno
    if len(found.pointer) > len(match.pointer) and found.pointer.startswith(match.pointer):
        match.pointer = found.pointer
    match.evidence += [e for e in found.evidence if e.startswith("dry run")]
    match.fix = match.fix or found.fix
    return []


def _pressure(out: Outcome) -> list[Finding]:
    """Warnings for a container that started but whose cgroup counted OOM kills or refused
    forks within the window: one of its processes (not its init) hit a limit."""
    c, found = out.counters, []
    if c.get("oom_kill"):
        ptr = "/linux/resources/memory/limit"
        found.append(Finding("oom-kill-child", WARNING, DRYRUN, "a process of the container was "
                             "killed by the OOM killer", f"the memory cgroup counted "
                             f"{c['oom_kill']} OOM kill(s) in the first {out.window:g}s; the "
                             "container's init survived", "start", "oom-kill", 0, ptr,
                             [f"memory cgroup: limit {c.get('memory_limit')}, peak "
                              f"{c.get('memory_peak')}, oom_kill {c['oom_kill']}"],
                             Fix("raise the memory limit")))
    if c.get("pids_max_events"):
        ptr = "/linux/resources/pids/limit"
        found.append(Finding("pids-limit-child", WARNING, DRYRUN, "the pids limit refused forks",
                             f"the pids cgroup refused {c['pids_max_events']} fork(s) in the "
                             f"first {out.window:g}s; the container's init survived", "start",
                             "fork", errno.EAGAIN, ptr, [f"pids.events max {c['pids_max_events']}"],
                             Fix("raise the pids limit")))
    return found


def _matches(pred: Finding, found: Finding, out: Outcome) -> bool:
    """Did the dry run fail the way a preflight finding said it would?"""
    if pred.code == found.code:
        return True
    if found.code in ("exec-failed", "library-missing") and pred.stage == "exec":
        return True
    if pred.op in ("execve", "ld.so") and out.phase == "exited" and not out.healthy:
        return True  # predicted to fail right after start, and it did
    if found.code.startswith("seccomp") and pred.code.startswith("seccomp"):
        return True
    if pred.code == "userns-rootfs-access" and found.stage == "mounts" \
            and found.errno == errno.EACCES:
        return True  # a closed rootfs refuses the first path resolved in it, at its own pointer
    if pred.stage != found.stage:
        return False
    a, b = pred.pointer, found.pointer
    return bool(a and b) and (a == b or a.startswith(b + "/") or b.startswith(a + "/"))


def _explain(out: Outcome, spec: dict, rootfs: str, bundle: str) -> Finding | None:
    evidence = _dry_evidence(out)
    c = out.counters
    limit_ptr = "/linux/resources/memory/limit"
    if c.get("oom_kill") and (out.signal == "SIGKILL" or out.error):
        limit = c.get("memory_limit") or 0
        when = "during setup" if out.phase == "setup" else (
            "before its program ran" if out.phase == "start" else
            f"{out.seconds:.2f}s after start")
        new = max(4 * limit, 64 * MIB)
        new -= new % MIB
        return Finding("oom-kill", ERROR, DRYRUN, "the container was killed by the OOM killer "
                       + when, f"the memory limit of {_mib(limit)} (config {limit_ptr}) is too "
                       "small: the kernel's OOM killer ended the process with SIGKILL "
                       + when + (" (the runtime's container side itself needs a few MiB)"
                                 if out.phase in ("setup", "start") else ""),
                       out.stage or "start", "oom-kill", 0, limit_ptr,
                       evidence + [f"memory cgroup: limit {limit}, peak "
                                   f"{c.get('memory_peak')}, oom_kill {c['oom_kill']}"],
                       Fix(f"raise the memory limit above what the program needs, e.g. "
                           f"{_mib(new)}" + _swap_too(spec, new), raise_memory(spec, new)))
    if out.signal == "SIGSYS":
        from ocish.diagnose.dryrun import syscall_name
        name = syscall_name(out.last_syscall)
        return Finding("seccomp-kill", ERROR, DRYRUN, "the seccomp filter killed the process"
                       + (f" at {name}" if name else ""),
                       "the process died of SIGSYS: a seccomp KILL action ends it as though "
                       "killed by SIGSYS, a TRAP action sends it" + (f"; the call it died in was {name}" if name else ""),
                       out.stage or "exec", name or "seccomp", 0, "/linux/seccomp",
                       evidence, Fix(f"allow {name} in /linux/seccomp", _allow(spec, name))
                       if name else Fix("allow the system call in /linux/seccomp"))
    if out.phase == "setup" and out.error is None and not out.stage:
        return Finding("create-failed", ERROR, DRYRUN, f"create fails before its first stage: "
                       f"{out.reason}", out.reason, "create", "", 0, "", evidence, None)
    if out.phase == "setup" and out.error is None:
        hooks = "hook" in out.stage and out.item
        untimed = [i for i, h in enumerate((spec.get("hooks") or {}).get(out.item) or [])
                   if isinstance(h, dict) and not h.get("timeout")] if hooks else []
        return Finding("setup-timeout", ERROR, DRYRUN, f"setup hung in stage {out.stage}",
                       f"{out.reason}, stuck in stage {out.stage} {out.item}".rstrip()
                       + (f": a {out.item} hook without a timeout never finished" if untimed
                          else ""), out.stage, "", 0, f"/hooks/{out.item}" if hooks else "",
                       evidence,
                       Fix("give the hooks a timeout, and find what they wait for",
                           [{"op": "add", "path": f"/hooks/{out.item}/{i}/timeout", "value": 30}
                            for i in untimed]) if hooks else None)
    if out.error is not None and out.error.get("op") != "sync":
        return _stage_finding(out.error, out, spec, rootfs, evidence)
    return _death_finding(out, spec, evidence, bundle)


def _death_finding(out: Outcome, spec: dict, evidence: list[str], bundle: str) -> Finding:
    """The process ended by itself: during setup, before exec (start failed), or after."""
    c = out.counters
    err_lines = "\n".join(out.stderr)
    how = f"killed by {out.signal}" if out.signal else f"exit status {out.exit_status}"
    if SECCOMP_CAUSE in err_lines and (spec.get("linux") or {}).get("seccomp"):
        return Finding("seccomp-errno", ERROR, DRYRUN, "the seccomp filter refused a call the "
                       "runtime makes before execve(2)", "the runtime's own last steps after "
                       "loading the filter failed with EPERM: the profile's default action "
                       "refuses them", out.stage or "exec", "openat", errno.EPERM,
                       "/linux/seccomp/defaultAction", evidence,
                       Fix("allow openat, write and execve in /linux/seccomp",
                           _allow(spec, "openat", "write", "execve")))
    if c.get("pids_max_events"):
        ptr = "/linux/resources/pids/limit"
        limit = c.get("pids_limit") or 0
        return Finding("pids-limit", ERROR, DRYRUN, f"forks were refused by the pids limit "
                       f"({limit})", f"the cgroup's pids limit {limit} (config {ptr}) refused "
                       f"{c['pids_max_events']} fork(s); the program could not start the "
                       f"processes it needs and ended ({how})", out.stage or "start", "fork",
                       errno.EAGAIN, ptr, evidence + [f"pids.events max {c['pids_max_events']}"],
                       Fix("raise the pids limit, e.g. to 64",
                           [{"op": "replace", "path": ptr, "value": max(64, 4 * limit)}]))
    if "error while loading shared libraries" in err_lines:
        lib = err_lines.split("error while loading shared libraries:", 1)[1].split(":", 1)[0]
        return Finding("library-missing", ERROR, DRYRUN, f"a shared library is missing:"
                       f"{lib}", "the dynamic loader could not find a library the program "
                       "needs", "exec", "ld.so", errno.ENOENT, "/process/args/0", evidence,
                       Fix(f"install{lib} in the rootfs"))
    last = out.stderr[-1] if out.stderr else ""
    if out.phase == "exited" and out.exit_status and errno_of(last) and \
            (last.startswith("exec") or " exec " in last):  # "ocish: exec /x: <strerror>"
        n = errno_of(last)
        return Finding("exec-failed", ERROR, DRYRUN, f"execve(2) of the entrypoint failed: "
                       f"{last.split(': ', 2)[-1]}", "the container started, and the kernel "
                       "refused to run its program", "exec", "execve", n, "/process/args/0",
                       evidence, None)
    where = {"setup": f"during stage {out.stage}", "start": "before its program ran",
             "exited": f"{out.seconds:.2f}s after start"}.get(out.phase, "")
    return Finding("process-died", ERROR, DRYRUN, f"the process ended {where}: {how}",
                   f"the container's process ended {where} ({how})"
                   + (f"; its last words: {last!r}" if last else ", without a word on stderr"),
                   out.stage if out.phase == "setup" else "start", "", 0, "/process/args",
                   evidence, Fix(f"run it by hand to see why: ocish debug {shlex.quote(bundle)}, "
                                 "then continue and start; or give the program what its error "
                                 "asks for"))


def _stage_finding(err: dict, out: Outcome, spec: dict, rootfs: str,
                   evidence: list[str]) -> Finding:
    """A StageError nobody predicted: its cause and fix by stage, operation and errno."""
    stage, op, n = err.get("stage", ""), err.get("op", ""), err.get("errno", 0)
    ptr, detail, target = err.get("pointer", ""), err.get("detail", ""), err.get("target", "")
    why = detail or (os.strerror(n).lower() if n else "failed")
    found, value = resolve_pointer(spec, ptr) if ptr else (False, None)

    def finding(code: str, cause: str, fix: Fix | None, title: str = "") -> Finding:
        return Finding(code, ERROR, DRYRUN, title or f"stage {stage}: {op} {target}: {why}"
                       .replace("  ", " "), cause, stage, op, n, ptr, evidence, fix)

    if stage == "mounts" and op == "mount" and n == errno.EINVAL and ptr.startswith("/mounts/"):
        return _bad_options(finding, spec, ptr)
    if stage == "mounts" and n == errno.EPERM and ptr.startswith("/mounts/"):
        return finding("mount-not-permitted", "the kernel does not let this container mount "
                       "that filesystem (in a user namespace only some types may be mounted, "
                       "and proc needs a pid namespace, sysfs a network namespace of its own)",
                       Fix("bind-mount it from the host instead, or remove the mount",
                           [{"op": "remove", "path": ptr}]))
    if stage in ("hooks", "container-hooks") and op.endswith(" hook"):
        return _hook_finding(finding, op, target, why, n, ptr)
    if stage == "start" or (out.phase == "start" and "startContainer" in out.start_error):
        return finding("hook-failed", out.start_error, None)
    if stage == "user" and op in ("setresuid", "setresgid", "setgroups") and n == errno.EINVAL:
        return finding("userns-unmapped", "the id is not mapped in the container's user "
                       "namespace", Fix("map it in /linux/uidMappings and /linux/gidMappings"))
    if stage == "mounts" and op == "setresuid":
        return finding("userns-root-unmapped", "the runtime works as the user namespace's root "
                       "while it sets the mounts up, and uid or gid 0 is not mapped",
                       Fix("map container id 0", map_zero(spec)))
    if stage == "exec" and op == "open" and "/proc" in target:
        from ocish.diagnose.preflight import proc_mount_ops
        return finding("no-proc", why, Fix("mount proc on /proc", proc_mount_ops(spec)))
    if stage == "cgroup":
        return finding("cgroup", f"the kernel refused the container's cgroup setting: {why}",
                       Fix(f"change {ptr}" + (f" (now {_short(value)})" if found else ""))
                       if ptr else None)
    return finding(f"{stage}-failed", f"{op} {target} failed in stage {stage}: {why}".replace(
        "  ", " "), Fix(f"check config {ptr}" + (f" (now {_short(value)})" if found else ""))
        if ptr else None)


def _hook_finding(finding, op: str, path: str, why: str, n: int, ptr: str) -> Finding:
    kind = op.removesuffix(" hook")
    title = f"{kind} hook {os.path.basename(path)}: {why}"
    if why.startswith("timeout"):
        return finding("hook-timeout", f"the {kind} hook {path} did not finish within its "
                       "timeout and was killed; setup cannot go on without it",
                       Fix("find what the hook waits for, or give it more time",
                           [{"op": "replace", "path": f"{ptr}/timeout", "value": 30}]), title)
    if why.startswith(("exit status", "killed by")):
        return finding("hook-failed", f"the {kind} hook {path} ran and failed ({why}: the first "
                       f"line it wrote); a {kind} hook that fails aborts the container's creation",
                       Fix("fix what the hook's error says, or remove the hook",
                           [{"op": "remove", "path": ptr}]), title)
    return finding("hook-missing" if n == errno.ENOENT else "hook-exec", f"the {kind} hook "
                   f"{path} cannot be run: {why}", Fix("install the hook program, or remove "
                                                       "the hook", [{"op": "remove", "path": ptr}]),
                   title)


def _bad_options(finding, spec: dict, ptr: str) -> Finding:
    """EINVAL from mount(2): try each of its data options alone to find the one refused."""
    from ocish.diagnose.probe import bad_mount_option
    index = int(ptr.split("/")[2])
    m = (spec.get("mounts") or [])[index]
    bad, tried = bad_mount_option(m)
    f = finding("mount-bad-option", f"mount(2) refused the options of {m.get('type')} on "
                f"{m.get('destination')}" + (f": {bad!r} is not an option {m.get('type')} takes"
                                             if bad else ""), None,
                f"mount {m.get('destination')}: {m.get('type')} refuses "
                + (f"the option {bad!r}" if bad else "its options"))
    f.evidence.append("probe: " + tried)
    if bad:
        j = m["options"].index(bad)
        f.pointer = f"{ptr}/options/{j}"
        f.fix = Fix(f"remove {bad!r} (or correct its value)",
                    [{"op": "remove", "path": f.pointer}])
    else:
        f.fix = Fix("check the mount's options against the filesystem's documentation")
    return f


def _dry_evidence(out: Outcome) -> list[str]:
    ev = []
    if out.error_text:
        ev.append(f"dry run: {out.error_text}")
    elif out.start_error:
        ev.append(f"dry run: {out.start_error}")
    if out.died:
        how = f"killed by {out.signal}" if out.signal else f"exit status {out.exit_status}"
        ev.append(f"dry run: {out.summary()}" if out.phase == "exited" else f"dry run: {how}")
    if out.reason and not out.error_text:
        ev.append(f"dry run: {out.reason}")
    if out.stderr:
        ev.append("dry run stderr: " + " | ".join(out.stderr[-3:]))
    if out.last_syscall:
        ev.append(f"dry run (traced): last system call {out.last_syscall}")
    return ev


def raise_memory(spec: dict, new: int) -> list[dict]:
    """Patch operations setting /linux/resources/memory/limit to `new` bytes, and the swap
    limit (memory+swap, runc's and the kernel's memsw) with it when it would fall below the new
    limit: runtime/spec.py refuses a swap below the memory limit. The swap keeps what it gave
    beyond the old limit."""
    mem = ((spec.get("linux") or {}).get("resources") or {}).get("memory") or {}
    mp = "/linux/resources/memory"
    ops = [{"op": "replace" if "limit" in mem else "add", "path": mp + "/limit", "value": new}]
    limit, swap = mem.get("limit"), mem.get("swap")
    if type(swap) is int and 0 < swap < new:
        extra = swap - limit if type(limit) is int and 0 < limit < swap else 0
        ops.append({"op": "replace", "path": mp + "/swap", "value": new + extra})
    return ops


def _swap_too(spec: dict, new: int) -> str:
    """The words for raise_memory's second operation, when it makes one."""
    return ", and the swap limit (memory+swap) with it" if len(raise_memory(spec, new)) > 1 \
        else ""


def map_zero(spec: dict) -> list[dict]:
    """Patch operations mapping container id 0 (uid and gid) to a host id above the ranges
    mapped already."""
    linux = spec.get("linux") if isinstance(spec.get("linux"), dict) else {}
    ops = []
    for key in ("uidMappings", "gidMappings"):
        maps = [m for m in linux.get(key) or [] if isinstance(m, dict)]
        if any(m.get("containerID") == 0 for m in maps):
            continue
        free = max((m.get("hostID", 0) + m.get("size", 0) for m in maps
                    if isinstance(m.get("hostID"), int) and isinstance(m.get("size"), int)),
                   default=100000)
        ops += append_ops(spec, f"/linux/{key}", {"containerID": 0, "hostID": free, "size": 1})
    return ops


def _allow(spec: dict, *names: str) -> list[dict]:
    return unblock((spec.get("linux") or {}).get("seccomp") or {}, list(names))


def _mib(n: int) -> str:
    return f"{n / MIB:g} MiB" if n else "?"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."

