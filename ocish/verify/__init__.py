"""`verify`: what config.json asked for, beside what the kernel holds for the container.

Each check module reads one area of the kernel state of a created or running container (its
init's /proc files, its mount namespace through /proc/PID/root, its cgroup files) and compares
it with the config, item by item: namespaces and id maps, hostname (checks_ns), mounts, masked
and read-only paths, device nodes (checks_mounts), cgroup limits (checks_cgroup), capabilities,
no_new_privs, seccomp, rlimits, oom_score_adj, user, groups, umask, cwd and env
(checks_process). The asked side is what the config *means*, not its raw strings: the runtime
normalises some things (the capability sets after execve(2), ambient capabilities the kernel
refuses, HOME from /etc/passwd, the default /dev nodes, a memory limit rounded to pages, cpu
shares as a v2 weight), and each check says which runc behaviour it follows.

Verdicts: "ok", "mismatch", or "skip" (not readable from outside the process, or not defined
by the config: the reason is in `note`). The container may come from any runtime (subject.py
finds it); nothing here changes its state, except that reading the hostname enters its uts
namespace in a short-lived child process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

OK, MISMATCH, SKIP = "ok", "mismatch", "skip"


@dataclass
class Item:
    """One row: what config.json asked (`asked`, in the kernel's terms), what the kernel holds
    (`actual`), the verdict, the config pointer it comes from and why when it is not ok."""
    item: str
    asked: str
    actual: str
    verdict: str
    pointer: str = ""
    note: str = ""


@dataclass
class Report:
    """What `verify` found for one container process."""
    id: str
    pid: int
    runtime: str          # ocish, runc, crun, or "pid" (a process given by its host pid)
    status: str           # created, running ...
    config: str           # the config.json the asked side was read from
    items: list[Item] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Item]:
        return [i for i in self.items if i.verdict == MISMATCH]

    def mismatch_text(self, most: int = 5) -> str:
        """"3 mismatches: a, b, c" (the first `most` items named, then how many more)."""
        names = [i.item for i in self.mismatches]
        more = f" (and {len(names) - most} more)" if len(names) > most else ""
        return (f"{len(names)} mismatch{'es' if len(names) != 1 else ''}"
                + (": " + ", ".join(names[:most]) + more if names else ""))

    def counts(self) -> dict[str, int]:
        out = {OK: 0, MISMATCH: 0, SKIP: 0}
        for i in self.items:
            out[i.verdict] += 1
        return out


def judge(item: str, asked, actual, pointer: str = "", same: bool | None = None,
          note: str = "") -> Item:
    """An Item whose verdict is `same` (when given) or asked == actual; values shown as
    strings (lists joined with ", ", None as "-")."""
    ok = (asked == actual) if same is None else same
    return Item(item, show(asked), show(actual), OK if ok else MISMATCH, pointer, note)


def skipped(item: str, asked, actual, note: str, pointer: str = "") -> Item:
    return Item(item, show(asked), show(actual), SKIP, pointer, note)


def show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def verify(subject) -> Report:
    """Every check on `subject` (subject.Subject). Raises OSError (ProcessLookupError) when its
    process is gone before the checks end."""
    from ocish.verify import checks_cgroup, checks_mounts, checks_ns, checks_process
    report = Report(subject.id, subject.pid, subject.runtime, subject.status, subject.config_path)
    for module in (checks_ns, checks_mounts, checks_cgroup, checks_process):
        report.items += module.check(subject)
    if not subject.alive():
        raise ProcessLookupError(f"process {subject.pid} ended while it was verified")
    return report
