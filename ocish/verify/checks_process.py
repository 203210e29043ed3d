"""The process: capabilities, no_new_privs, seccomp, rlimits, oom_score_adj, user, groups,
umask, cwd and env, from /proc/PID/{status,limits,oom_score_adj,environ,cwd}.

What the config means, beside its raw values:
- capabilities: a set can only hold what the runtime's own bounding set holds (this host's
  lacks CAP_SYS_RESOURCE), and an ambient capability the kernel refuses (not both permitted and
  inheritable) is skipped, as runc does. Once the user's process runs, its sets are those
  execve(2) derived (capabilities(7)): for uid 0, permitted = effective = bounding |
  inheritable; for another uid, permitted = effective = ambient. A created container's init has
  not exec'd: its sets are the asked ones. An executable with file capabilities or set-user-ID
  gets other sets: then those rows are skipped.
- an absent /process/capabilities empties every set (runc).
- seccomp: a /linux/seccomp means mode filter and one more filter than the runtime had (this
  process's count); none, the runtime's own.
- user: uid and gid as the host sees them, mapped through the process's uid_map/gid_map;
  groups are additionalGids (runc sets only those; in a new user namespace without any, the
  runtime's groups stay); umask defaults to 0022 (runc).
- env: process.env (the last entry of a name wins) plus HOME when it has none: the home of the
  uid in the container's /etc/passwd, else "/" (runc's setupUser); only once the process ran
  (a created container's init has not exec'd its env yet).
"""
from __future__ import annotations

import os

from ocish.inspect.status import ints, read_status
from ocish.verify import Item, judge, skipped
from ocish.verify.subject import Subject
from runtime.errors import SpecError
from runtime.linux import capabilities as C
from runtime.spec import cap_masks
from runtime.stages.process import env_value, passwd_home

RLIM_INFINITY = 2**64 - 1
# /proc/PID/limits row -> RLIMIT_ name (fs/proc/base.c lnames)
LIMIT_ROWS = {"Max cpu time": "CPU", "Max file size": "FSIZE", "Max data size": "DATA",
              "Max stack size": "STACK", "Max core file size": "CORE", "Max resident set": "RSS",
              "Max processes": "NPROC", "Max open files": "NOFILE",
              "Max locked memory": "MEMLOCK", "Max address space": "AS",
              "Max file locks": "LOCKS", "Max pending signals": "SIGPENDING",
              "Max msgqueue size": "MSGQUEUE", "Max nice priority": "NICE",
              "Max realtime priority": "RTPRIO", "Max realtime timeout": "RTTIME"}
_STATUS_SETS = {"bounding": "CapBnd", "effective": "CapEff", "inheritable": "CapInh",
                "permitted": "CapPrm", "ambient": "CapAmb"}


def check(s: Subject) -> list[Item]:
    """Items for the capability sets, no_new_privs, seccomp, rlimits, oom_score_adj, user,
    groups, umask, cwd and env. Raises OSError when the process is gone."""
    st = read_status(s.pid)
    proc = s.spec.get("process") or {}
    return (_caps(s, st, proc) + _nnp_seccomp(s, st, proc) + _rlimits(s, proc) + _oom(s, proc)
            + _user(s, st, proc) + _cwd(s, proc) + _env(s, proc))


def expected_caps(asked: dict, runtime_bounding: int, uid: int, after_exec: bool) -> dict[str, int]:
    """The five masks the process should hold for the config's /process/capabilities (`asked`,
    names per set), the runtime's bounding mask and the container uid; `after_exec`: after the
    user's execve(2) of a file without file capabilities or set-user-ID (capabilities(7))."""
    m = {k: v & runtime_bounding for k, v in cap_masks(asked).items()}
    m["ambient"] &= m["permitted"] & m["inheritable"]
    if after_exec:
        gained = (m["bounding"] | m["inheritable"]) if uid == 0 else 0
        m["permitted"] = gained | m["ambient"]
        m["effective"] = m["permitted"]
    return m


def _caps(s: Subject, st: dict, proc: dict) -> list[Item]:
    asked = proc.get("capabilities") if isinstance(proc.get("capabilities"), dict) else {}
    uid = (proc.get("user") or {}).get("uid", 0)
    special = _exec_special(s.pid) if s.started else ""
    try:
        want = expected_caps(asked, int(read_status(os.getpid())["CapBnd"], 16), uid,
                             s.started and not special)
    except SpecError as e:
        return [skipped("caps", "", "", e.message, e.pointer)]
    out = []
    for name in C.SETS:
        have = int(st[_STATUS_SETS[name]], 16)
        item, ptr = f"caps {name}", f"/process/capabilities/{name}"
        if special and name in ("effective", "permitted", "ambient"):
            out.append(skipped(item, C.names(want[name]), C.names(have), special, ptr))
            continue
        raw = set(asked.get(name) or [])
        note = ""
        if set(C.names(want[name])) != raw:
            note = "after execve(2)" if s.started and name in ("effective", "permitted") else \
                "as the kernel allows"
        out.append(judge(item, C.names(want[name]), C.names(have), ptr, same=want[name] == have,
                         note=note))
    return out


def _exec_special(pid: int) -> str:
    """Why execve(2) gave the process other sets than capabilities(7)'s plain rule: file
    capabilities or set-user/group-ID on its executable; "" when neither."""
    exe = f"/proc/{pid}/exe"
    try:
        if os.stat(exe).st_mode & 0o6000:
            return "its executable is set-user-ID or set-group-ID"
        os.getxattr(exe, "security.capability")
        return "its executable has file capabilities"
    except OSError:
        return ""


def _nnp_seccomp(s: Subject, st: dict, proc: dict) -> list[Item]:
    out = [judge("no_new_privs", bool(proc.get("noNewPrivileges")), st.get("NoNewPrivs") == "1",
                 "/process/noNewPrivileges")]
    ours = int(read_status(os.getpid()).get("Seccomp_filters", "0"))
    asked = isinstance((s.spec.get("linux") or {}).get("seccomp"), dict)
    mode = {"0": "disabled", "1": "strict", "2": "filter"}.get(st.get("Seccomp", "0"), "?")
    want_mode = "filter" if asked or ours else "disabled"
    out.append(judge("seccomp mode", want_mode, mode, "/linux/seccomp"))
    want = ours + (1 if asked else 0)
    out.append(judge("seccomp filters", want, int(st.get("Seccomp_filters", "0")),
                     "/linux/seccomp", note=f"{ours} inherited from the runtime" if ours else ""))
    return out


def _limits(pid: int) -> dict[str, tuple[int, int]]:
    """{"NOFILE": (soft, hard)} from /proc/PID/limits ("unlimited" as RLIM_INFINITY)."""
    out = {}
    with open(f"/proc/{pid}/limits") as f:
        for line in f.read().splitlines()[1:]:
            for label, name in LIMIT_ROWS.items():
                if line.startswith(label + " "):
                    soft, hard = line[len(label):].split()[:2]
                    out[name] = tuple(RLIM_INFINITY if v == "unlimited" else int(v)
                                      for v in (soft, hard))
    return out


def _rlimits(s: Subject, proc: dict) -> list[Item]:
    asked = [(i, r) for i, r in enumerate(proc.get("rlimits") or []) if isinstance(r, dict)]
    if not asked:
        return []
    have, out = _limits(s.pid), []
    for i, r in asked:
        name = str(r.get("type", "")).removeprefix("RLIMIT_")
        want = (r.get("soft"), r.get("hard"))
        got = have.get(name)
        out.append(judge(f"rlimit {name.lower()}", _pair(want), _pair(got) if got else "-",
                         f"/process/rlimits/{i}", same=got == want))
    return out


def _pair(v) -> str:
    return "soft {} hard {}".format(*("unlimited" if x == RLIM_INFINITY else x for x in v))


def _oom(s: Subject, proc: dict) -> list[Item]:
    if not isinstance(proc.get("oomScoreAdj"), int):
        return []
    with open(f"/proc/{s.pid}/oom_score_adj") as f:
        have = int(f.read())
    return [judge("oom_score_adj", proc["oomScoreAdj"], have, "/process/oomScoreAdj")]


def _user(s: Subject, st: dict, proc: dict) -> list[Item]:
    user = proc.get("user") or {}
    out = []
    for key, row in (("uid", "Uid"), ("gid", "Gid")):
        want = s.host_id(user.get(key, 0), key)
        have = ints(st[row])  # real, effective, saved, filesystem
        out.append(judge(f"user {key}", f"{user.get(key, 0)} (host {want})",
                         "/".join(map(str, have)), f"/process/user/{key}",
                         same=set(have) == {want}))
    groups = [g for g in user.get("additionalGids") or [] if isinstance(g, int)]
    have = sorted(ints(st.get("Groups", "")))
    linux = s.spec.get("linux") or {}
    new_user = any(isinstance(n, dict) and n.get("type") == "user" and not n.get("path")
                   for n in linux.get("namespaces") or [])
    if not groups and new_user:
        out.append(skipped("user groups", "(none)", have, "kept from the runtime: runc calls "
                           "setgroups only with additionalGids in a new user namespace",
                           "/process/user/additionalGids"))
    else:
        want = sorted(s.host_id(g, "gid") for g in groups)
        out.append(judge("user groups", want, have, "/process/user/additionalGids"))
    umask = user.get("umask", 0o022)
    have_umask = int(st.get("Umask", "-1"), 8)
    out.append(judge("umask", f"{umask:04o}", st.get("Umask", "-"), "/process/user/umask",
                     same=have_umask == umask))
    return out


def _cwd(s: Subject, proc: dict) -> list[Item]:
    cwd = proc.get("cwd") or "/"
    try:
        have = os.readlink(f"/proc/{s.pid}/cwd")
        a, b = os.stat(f"/proc/{s.pid}/cwd"), os.stat(s.root(cwd))
    except OSError as e:
        return [judge("cwd", cwd, os.strerror(e.errno or 0).lower(), "/process/cwd", same=False)]
    return [judge("cwd", cwd, have, "/process/cwd", same=(a.st_dev, a.st_ino) ==
                  (b.st_dev, b.st_ino))]


def expected_env(env: list[str], home: str) -> dict[str, str]:
    """The environment execve(2) gets for process.env: later entries win; HOME added when
    absent (`home`: the uid's home in the container's /etc/passwd, runc's setupUser)."""
    out = {}
    for entry in env:
        key, eq, value = entry.partition("=")
        if eq:
            out[key] = value
    if not env_value(env, "HOME"):
        out["HOME"] = home
    return out


def _env(s: Subject, proc: dict) -> list[Item]:
    env = [e for e in proc.get("env") or [] if isinstance(e, str)]
    if not s.started:
        return [skipped("env", env, "", "set at the user's execve: start the container",
                        "/process/env")]
    uid = (proc.get("user") or {}).get("uid", 0)
    want = expected_env(env, passwd_home(uid, s.root("/etc/passwd")))
    with open(f"/proc/{s.pid}/environ", "rb") as f:
        pairs = [e.decode(errors="backslashreplace").partition("=")
                 for e in f.read().split(b"\0") if e]
    have = {k: v for k, _, v in pairs}
    out = []
    for key in sorted(set(want) | set(have)):
        a, b = want.get(key), have.get(key)
        note = ""
        if key == "HOME" and not env_value(env, "HOME"):
            note = "not in /process/env: the home in /etc/passwd (runc's setupUser)"
        elif key not in want:
            note = "not in /process/env"
        out.append(judge(f"env {key}", a, b, "/process/env", note=note))
    return out
