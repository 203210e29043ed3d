"""What a diagnosis is made of: findings (each with its cause, evidence and fix), the dry run's
outcome, and the whole report. Plain data; report.py renders it as text or JSON."""
from __future__ import annotations

import errno as errnomod
import os
from dataclasses import asdict, dataclass, field

ERROR, WARNING, INFO = "error", "warning", "info"
LINT, PREFLIGHT, DRYRUN = "lint", "preflight", "dry run"


class DiagnoseError(Exception):
    """diagnose itself could not run (no bundle, unreadable config.json): exit status 2."""


@dataclass
class Fix:
    """A concrete repair: `patch` edits config.json (RFC 6902 operations, paths are the JSON
    pointers the runtime reports), `command` repairs the rootfs or the host; `text` says it in
    words."""
    text: str
    patch: list[dict] = field(default_factory=list)
    command: str = ""


@dataclass
class Finding:
    code: str                      # a stable slug for tools and tests: "entrypoint-interpreter"
    severity: str                  # error | warning | info
    source: str                    # lint | preflight | dry run
    title: str                     # one line
    cause: str = ""                # the cause in plain words
    stage: str = ""                # the setup stage that fails (or would fail)
    op: str = ""                   # the operation in it (a syscall, "exec", "prestart hook")
    errno: int = 0
    pointer: str = ""              # the config.json item to blame
    evidence: list[str] = field(default_factory=list)
    fix: Fix | None = None
    confirmed: bool = False        # a preflight prediction the dry run failed exactly as

    @property
    def errno_name(self) -> str:
        return errnomod.errorcode.get(self.errno, "") if self.errno else ""

    @property
    def errno_text(self) -> str:
        return os.strerror(self.errno).lower() if self.errno else ""

    def to_dict(self, spec=None) -> dict:
        """The finding as JSON data; `value` is what config.json (`spec`, the parsed document
        whatever its type) has at the pointer, the whole document for the root pointer, and
        null when there is nothing there (a missing member, a file that is not JSON)."""
        d = asdict(self)
        d["errno_name"], d["errno_text"] = self.errno_name, self.errno_text
        d["value"] = self.value_in(spec)[1]
        return d

    def value_in(self, spec) -> tuple[bool, object]:
        """(found, value) at the finding's pointer in the parsed config.json `spec` (None: it
        did not parse)."""
        return resolve_pointer(spec, self.pointer) if spec is not None else (False, None)


@dataclass
class Outcome:
    """What the dry run saw. `phase`: "not run", "setup" (a stage failed or setup died),
    "start" (`start` itself failed), "exited" (the process ended within the window),
    "running" (still alive at the window's end)."""
    phase: str = "not run"
    reason: str = ""                         # why it was not run, or was cut short
    error: dict | None = None                # StageError.to_dict() of the failed stage
    error_text: str = ""                     # the runtime's own one-line message
    stage: str = ""                          # where setup stood when it failed or died
    item: str = ""
    start_error: str = ""
    exit_status: int | None = None
    signal: str = ""                         # "SIGKILL" when a signal ended it
    seconds: float = 0.0                     # how long the process lived after `start`
    window: float = 0.0
    counters: dict = field(default_factory=dict)   # cgroup: oom_kill, pids max events ...
    stdout: list[str] = field(default_factory=list)  # last lines
    stderr: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)   # last lines of the strace of a re-run
    last_syscall: str = ""
    notes: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0

    @property
    def died(self) -> bool:
        """The process died, during setup or after start, by itself (not a StageError)."""
        return self.exit_status is not None or bool(self.signal)

    @property
    def healthy(self) -> bool:
        return self.phase == "running" or (self.phase == "exited" and self.exit_status == 0
                                           and not self.signal)

    def summary(self) -> str:
        """One line: "started, still running after 1.0s", "setup failed at stage mounts" ..."""
        if self.phase == "not run":
            return f"not run: {self.reason}" if self.reason else "not run"
        if self.phase == "running":
            return f"started; still running after {self.window:g}s"
        how = f"killed by {self.signal}" if self.signal else f"exit status {self.exit_status}"
        if self.phase == "exited":
            return f"started; {how} after {self.seconds:.2f}s"
        if self.phase == "start":
            return f"created; start failed: {self.start_error}"
        if self.died:
            return f"setup died in stage {self.stage}: {how}"
        if not self.stage:
            return self.error_text or f"setup failed: {self.reason}"
        if not self.error_text:
            return f"setup stopped in stage {self.stage}: {self.reason}"
        return f"setup failed at stage {self.stage}: {self.error_text}"


@dataclass
class Report:
    bundle: str
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)     # what preflight looked at and found fine
    lint_ok: bool = True
    outcome: Outcome = field(default_factory=Outcome)
    against: dict | None = None                          # --against runc: runc's outcome
    seconds: float = 0.0
    spec: object = None                                  # config.json parsed, when it is JSON
    container: dict | None = None                        # --podman/--containerd: which one

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def healthy(self) -> bool:
        return not self.errors and self.outcome.healthy

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "healthy": self.healthy,
                "verdict": verdict(self), "lint": "ok" if self.lint_ok else "failed",
                "dry_run": {**asdict(self.outcome), "summary": self.outcome.summary()},
                "findings": [f.to_dict(self.spec) for f in self.findings],
                "checked": self.checked, "against": self.against, "container": self.container,
                "seconds": round(self.seconds, 3)}


def verdict(report: Report) -> str:
    """One line that counts what the report lists: "1 problem found", "1 problem found,
    1 warning", "healthy: started; still running after 1.5s, 2 warnings"."""
    n = len(report.errors)
    if report.healthy:
        head = "healthy: " + report.outcome.summary()
    else:
        head = f"{n} problem{'s' if n != 1 else ''} found" if n else \
            "not healthy: " + report.outcome.summary()
    rest = [f"{k} {word}{'s' if k != 1 else ''}" for word, k in
            (("warning", count_severity(report.findings, WARNING)), ("note", count_severity(report.findings, INFO)))
            if k]
    return ", ".join([head] + rest)


def lint_summary(report: Report) -> str:
    """lint's line of the report, counted as `ocish lint` counts: "ok", "ok, 1 warning (`create`
    takes it)", "failed: `create` refuses this config"."""
    if not report.lint_ok:
        return "failed: `create` refuses this config"
    w = sum(1 for f in report.findings if f.source == LINT and f.severity == WARNING)
    return f"ok, {w} warning{'s' if w != 1 else ''} (`create` takes it)" if w else "ok"


def count_severity(findings: list[Finding], severity: str) -> int:
    """How many of `findings` have `severity` (error, warning, info)."""
    return sum(1 for f in findings if f.severity == severity)


def resolve_pointer(doc, pointer: str) -> tuple[bool, object]:
    """(found, value) of an RFC 6901 pointer in `doc`."""
    if pointer in ("", "/"):
        return True, doc
    cur = doc
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and token in cur:
            cur = cur[token]
        elif isinstance(cur, list) and token.isdigit() and int(token) < len(cur):
            cur = cur[int(token)]
        else:
            return False, None
    return True, cur


def append_ops(doc, pointer: str, *values) -> list[dict]:
    """JSON patch operations (RFC 6902) appending `values` to the list at `pointer` of `doc`:
    "add POINTER/-" each when the list is there, else the objects on the way that are missing
    and then the list itself, made with one "add" each (an "add" into a missing parent is
    refused)."""
    if resolve_pointer(doc, pointer)[0]:
        return [{"op": "add", "path": f"{pointer}/-", "value": v} for v in values]
    tokens = pointer.lstrip("/").split("/")
    ops = []
    for i in range(1, len(tokens)):
        here = "/" + "/".join(tokens[:i])
        if not resolve_pointer(doc, here)[0]:
            ops.append({"op": "add", "path": here, "value": {}})
    return ops + [{"op": "add", "path": pointer, "value": list(values)}]
