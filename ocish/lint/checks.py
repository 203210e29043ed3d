"""What `ocish lint` checks, in four layers, every finding with its severity, pointer and fix.

1. spec       runtime/spec.py's own checks in lint's mode (`collect`): every problem `create`
              would refuse the config for, create stopping at the first of them. Errors.
2. schema     the official runtime-spec 1.2 JSON schema (schemacheck.py): where it refuses what
              spec.py accepts (documented there: another platform's section, runc's recursive
              propagations ...). Warnings: `create` takes the config.
3. static     what the runtime takes but ignores or drops: members it does not know (typos),
              settings it does not apply, syscall names libseccomp does not know and capability
              names this kernel lacks (skipped, as runc does). Warnings.
4. host       the config against this host and its rootfs (ocish/diagnose/preflight.py, nothing
              run): namespace files of the wrong type, rlimits and capabilities above what the
              runtime holds, sysctls and filesystem types the kernel lacks, mount sources and
              options, the entrypoint, the cwd, hooks, cpusets, the cgroup path, a seccomp
              profile that stops the runtime. An error when the stage that fails runs during
              `create` (it would refuse the bundle), a warning when it fails later (`start`, the
              program's execve(2), a poststop hook), so that lint's errors are exactly `create`'s
              failures: tests/lint/test_agreement.py runs both over every broken config of the
              test suite.
"""
from __future__ import annotations

import dataclasses
import difflib
import os

from ocish.diagnose.model import ERROR, INFO, LINT, WARNING, Finding, Fix
from ocish.lint import schemacheck
from runtime import spec as specmod
from runtime.errors import OcishError

# What the runtime reads beyond runtime-spec 1.2's schema (1.3's members).
BEYOND_1_2 = {("linux",): ("netDevices", "memoryPolicy")}
# Set, accepted, and not applied by this runtime: (pointer, why).
NOT_APPLIED = [("/linux/intelRdt", "ocish has no Intel RDT (resctrl) support"),
               ("/linux/memoryPolicy", "ocish does not call set_mempolicy(2)"),
               ("/linux/netDevices", "ocish does not move network devices into the container")]
# The hooks `create` runs (runtime-spec's order: prestart, createRuntime, createContainer).
CREATE_HOOKS = ("prestart", "createRuntime", "createContainer")
# Stages that fail after `create` returned: a finding there is a warning for lint.
AFTER_CREATE = ("start", "delete", "")


class LintError(Exception):
    """Lint itself cannot run (no bundle, config.json unreadable): exit status 2."""


@dataclasses.dataclass
class Report:
    target: str                  # what was asked for: a bundle or a config.json
    bundle: str
    config: str                  # the config.json read
    findings: list[Finding]
    checked: list[str]
    spec: object = None          # the parsed config.json, when it parses

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def fails(self, strict: bool = False) -> bool:
        return bool(self.count(ERROR) or strict and self.count(WARNING))

    def to_dict(self) -> dict:
        spec = self.spec
        return {"target": self.target, "bundle": self.bundle, "config": self.config,
                "errors": self.count(ERROR), "warnings": self.count(WARNING),
                "info": self.count(INFO),
                "findings": [_public(f.to_dict(spec)) for f in self.findings],
                "checked": self.checked}


def locate(target: str) -> tuple[str, str]:
    """(bundle directory, config file name) for a bundle or a config.json path."""
    target = os.path.abspath(target)
    if os.path.isdir(target):
        return target, "config.json"
    if os.path.exists(target):
        return os.path.dirname(target), os.path.basename(target)
    raise LintError(f"{target}: no such file or directory")


def lint(target: str, host: bool = True) -> Report:
    """Every finding for a bundle (or a config.json, its directory being the bundle). `host`:
    also check the config against this host and the rootfs (layer 4). Raises LintError when
    the config cannot be read at all."""
    bundle, name = locate(target)
    config = os.path.join(bundle, name)
    report = Report(target, bundle, config, [], [])
    try:
        doc = specmod.read(bundle, name)
    except OcishError as e:
        why = str(e).split(f"{name}: ", 1)[-1]
        if not why.startswith(("invalid json", "not valid utf-8")):
            raise LintError(f"{config}: {why}") from None
        report.findings.append(_not_json(config, why))
        return report
    report.spec = doc
    errors = specmod.collect(doc, bundle)
    rootfs = None
    if isinstance(doc, dict):
        from ocish.diagnose import rootfs_of
        rootfs = rootfs_of(doc, bundle)
    report.findings += [_spec_finding(e, doc, rootfs) for e in errors]
    report.findings += _schema_findings(doc, errors)
    if not isinstance(doc, dict):
        return report
    report.findings += _static_findings(doc)
    if host:
        _host(report, doc, bundle, errors)
    order = {ERROR: 0, WARNING: 1, INFO: 2}
    report.findings.sort(key=lambda f: (order.get(f.severity, 3), _position(doc, f.pointer)))
    return report


def _position(doc, pointer: str) -> tuple:
    """Where a pointer's item sits in config.json (members in the file's order), for sorting;
    a member that is missing sorts after its siblings."""
    out = []
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and token in doc:
            out.append(list(doc).index(token))
            doc = doc[token]
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            out.append(int(token))
            doc = doc[int(token)]
        else:
            out.append(1 << 30)
            doc = None
    return tuple(out)


# -- 1. the runtime's own checks -----------------------------------------------------------------

def _spec_finding(e, doc, rootfs: str | None) -> Finding:
    from ocish.diagnose.explain import spec_finding
    f = spec_finding(e.pointer, e.message, doc if isinstance(doc, dict) else {}, rootfs)
    f.title, f.evidence = e.message, []  # the value is shown next to the pointer
    return f


def _not_json(config: str, why: str) -> Finding:
    return Finding("config-json", ERROR, LINT, "config.json cannot be parsed", why,
                   "validate", "parse", 0, "", _json_error_lines(config, why),
                   Fix(f"make it valid JSON (python3 -m json.tool {config} shows where it "
                       "breaks)"))


def _json_error_lines(config: str, why: str) -> list[str]:
    """The lines of `config` around the one a JSON error names ("... at line 178 column 1:
    ..."), as evidence."""
    try:
        line = int(why.split(" at line ", 1)[1].split()[0])
        with open(config, errors="replace") as f:
            text = f.read().splitlines()
        return [f"{os.path.basename(config)} line {n}: {text[n - 1].rstrip()}"
                for n in range(max(1, line - 1), min(len(text), line) + 1)]
    except (IndexError, ValueError, OSError):
        return []


# -- 2. the schema -------------------------------------------------------------------------------

def _schema_findings(doc, errors) -> list[Finding]:
    out = []
    for e in schemacheck.errors(doc):
        if any(schemacheck.related(e.pointer, s.pointer) for s in errors):
            continue  # the runtime's own finding says it
        why = schemacheck.looser(e.pointer) or "not a documented difference: please report it"
        out.append(Finding("schema", WARNING, LINT, f"the runtime-spec 1.2 schema refuses "
                           f"this: {e.message}", f"ocish accepts it: {why}", "", "", 0,
                           e.pointer, [],
                           Fix("follow the schema, for runtimes that enforce it")))
    return out


# -- 3. accepted, then ignored or dropped --------------------------------------------------------

def _static_findings(doc: dict) -> list[Finding]:
    out = unknown_members(doc)
    for ptr, why in NOT_APPLIED:
        found, value = _at(doc, ptr)
        if found and value not in ({}, None):
            out.append(Finding("not-applied", WARNING, LINT, f"{ptr} is accepted but not "
                               "applied", why, "", "", 0, ptr, [],
                               Fix(f"remove {ptr}", [{"op": "remove", "path": ptr}])))
    out += _unknown_syscalls(doc)
    out += _caps_beyond_kernel(doc)
    out += _hooks_run_by_create(doc)
    return out


def _hooks_run_by_create(doc: dict) -> list[Finding]:
    """Hooks `create` runs: their program is checked (layer 4), what it does is not."""
    hooks = doc.get("hooks") if isinstance(doc.get("hooks"), dict) else {}
    out = []
    for kind in CREATE_HOOKS:
        for i, h in enumerate(hooks.get(kind) if isinstance(hooks.get(kind), list) else []):
            path = h.get("path") if isinstance(h, dict) else None
            if isinstance(path, str):
                timeout = h.get("timeout")
                out.append(Finding("hook-runs", INFO, LINT, f"{kind} hook {path} runs during "
                                   "create", "lint checks that the program is there and can be "
                                   "executed; whether it exits 0" + (
                                       f" within its {timeout}s timeout"
                                       if isinstance(timeout, int) else "")
                                   + " shows only when it runs", "", "", 0,
                                   f"/hooks/{kind}/{i}", [],
                                   Fix("`ocish diagnose` runs it in a throwaway container")))
    return out


def unknown_members(doc: dict) -> list[Finding]:
    """Members the schema does not describe where it lists them all: ignored by the runtime
    (runtime-spec: "MUST ignore unknown properties"), usually a typo."""
    from ocish.lint.schemacheck import known_members
    out = []
    for ptr, key, known in known_members(doc):
        parents = tuple(p for p in ptr.split("/")[1:])
        if key in BEYOND_1_2.get(parents, ()):
            continue
        close = difflib.get_close_matches(key, known, 1, 0.75)
        where = f"{ptr}/{specmod.esc(key)}"
        out.append(Finding("unknown-member", WARNING, LINT, f"unknown member {key!r}: ignored",
                           "the runtime ignores members runtime-spec 1.2 does not define"
                           + (f"; did you mean {close[0]!r}?" if close else ""), "", "", 0,
                           where, [f"{ptr or '/'} knows: {', '.join(sorted(known))}"],
                           Fix(f"rename it to {close[0]!r}" if close else "remove it",
                               [{"op": "move", "from": where,
                                 "path": f"{ptr}/{specmod.esc(close[0])}"}] if close else
                               [{"op": "remove", "path": where}])))
    return out


def _unknown_syscalls(doc: dict) -> list[Finding]:
    from runtime.linux import seccomp
    sc = _at(doc, "/linux/seccomp")[1]
    if not isinstance(sc, dict) or not isinstance(sc.get("syscalls"), list) or \
            not seccomp.available():
        return []
    out = []
    for i, call in enumerate(sc["syscalls"]):
        names = call.get("names") if isinstance(call, dict) else None
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and seccomp.syscall_number(name) == seccomp.NR_SCMP_ERROR:
                ptr = f"/linux/seccomp/syscalls/{i}/names/{j}"
                out.append(Finding("syscall-unknown", WARNING, LINT, f"syscall {name!r} is "
                                   f"unknown to libseccomp {seccomp.version()}", "the rule for "
                                   "it is skipped, as runc skips it", "", "", 0, ptr, [],
                                   Fix("check the name (or leave it for newer kernels)")))
    return out


def _caps_beyond_kernel(doc: dict) -> list[Finding]:
    from runtime.linux import capabilities as C
    caps = _at(doc, "/process/capabilities")[1]
    if not isinstance(caps, dict):
        return []
    out = []
    for s in C.SETS:
        for i, c in enumerate(caps.get(s) if isinstance(caps.get(s), list) else []):
            if isinstance(c, str) and C.NUMBERS.get(c, -1) > C.LAST_CAP:
                out.append(Finding("capability-unsupported", WARNING, LINT, f"{c} is unknown to "
                                   f"this kernel (its last is {C.name(C.LAST_CAP)})",
                                   "the runtime leaves it out, as runc does", "", "", 0,
                                   f"/process/capabilities/{s}/{i}", [], None))
    return out


# -- 4. the host and the rootfs ------------------------------------------------------------------

def _host(report: Report, doc: dict, bundle: str, errors: list) -> None:
    from ocish.diagnose import rootfs_of
    from ocish.diagnose.preflight import Preflight
    rootfs = rootfs_of(doc, bundle)
    if rootfs is None:
        report.checked.append("host checks: skipped, there is no rootfs to check against")
        return
    pre = Preflight(doc, bundle, rootfs)
    pre.run()
    seen = {e.pointer for e in errors}
    for f in pre.findings:
        if f.pointer in seen:
            continue
        report.findings.append(dataclasses.replace(f, source=LINT,
                                                   severity=lint_severity(f)))
    report.checked += pre.checked


def lint_severity(f: Finding) -> str:
    """A preflight finding's severity for lint: an error only when the stage that fails runs
    during `create`. Of stage exec, `create` runs the look-up of the entrypoint (op "exec", as
    runc's LookPath) and tries the hand-off's open of exec.fifo (EMFILE under a low
    RLIMIT_NOFILE) and its calls under the seccomp filter loaded there (open and write
    exec.fifo: runtime/stages/exec.py); execve(2) runs at `start`."""
    if f.severity != ERROR:
        return f.severity
    if f.stage in AFTER_CREATE or f.stage == "exec" and f.op not in ("exec", "openat", "write"):
        return WARNING
    return ERROR


def _at(doc, pointer: str) -> tuple[bool, object]:
    from ocish.diagnose.model import resolve_pointer
    return resolve_pointer(doc, pointer)


def _public(d: dict) -> dict:
    """A finding for `--format json`: diagnose's fields that mean nothing to lint dropped."""
    for key in ("confirmed",):
        d.pop(key, None)
    return d
