"""The reports of `ocish replay`: TAP for people and harnesses, JSON for tools, JUnit XML for CI.

- TAP (the Test Anything Protocol, version 13; the stream uses nothing TAP 14 dropped, so TAP 14
  consumers read it too): a version line, one test point per expectation, streamed as it is
  checked, each failure followed by a YAML diagnostic block (message, file, line, expected,
  actual), skipped ones marked `# SKIP`, the plan `1..N` at the end (allowed after the points),
  a `Bail out!` when nothing could run. `prove` (TAP::Harness) parses it.
- JSON: one document, the scripts with their results and a summary.
- JUnit XML: `testsuites` > one `testsuite` per script > one `testcase` per test point, with
  `failure`, `error` (the script could not run) or `skipped`; the attributes of the common
  schema (Jenkins' junit-10.xsd, as read by Jenkins, GitLab CI and GitHub's test reporters).
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ocish.replay import Result, ScriptRun

FORMATS = ("tap", "json", "junit")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _summary(runs: list["ScriptRun"]) -> dict:
    results = [r for run in runs for r in run.results]
    count = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail", "skip", "error")}
    return {"scripts": len(runs), "tests": len(results), "passed": count["pass"],
            "failed": count["fail"], "skipped": count["skip"], "errors": count["error"],
            "duration": round(sum(run.duration for run in runs), 3)}


def _description(r: "Result") -> str:
    """A test point's description: FILE:LINE: the line (a # would start a TAP directive)."""
    from ocish.variables import strip_comment
    text = strip_comment(r.text)
    return f"{r.file}:{r.line}: {text}".replace("\\", "\\\\").replace("#", "\\#")


class Report:
    """Writes one format to `out`: TAP as results come, JSON and JUnit at the end."""

    def __init__(self, fmt: str, out: IO[str]) -> None:
        self.fmt, self.out = fmt, out
        self.count = 0
        if fmt == "tap":
            self._write("TAP version 13")

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def bail(self, errors: list[str], runs: list["ScriptRun"]) -> None:
        """Nothing runs: say why, in the format asked for. `runs`: the scripts that could not
        be read, each with its error (JSON and JUnit list them); none when the options are
        what is wrong (then `errors` is why)."""
        if self.fmt == "tap":
            self._write(f"Bail out! {errors[0]}")
        elif self.fmt == "json":
            doc = to_json(runs, 2)
            doc["errors"] = errors
            if not runs:  # the options are what cannot run: one error, as JUnit counts it
                doc["summary"]["errors"] = len(errors)
            self._write(json.dumps(doc, indent=2))
        else:
            self._write(junit(runs, [] if runs else errors))

    def start(self, file: str) -> None:
        if self.fmt == "tap":
            self._write(f"# {file}")

    def result(self, r: "Result") -> None:
        self.count += 1
        if self.fmt != "tap":
            return
        if r.status == "pass":
            self._write(f"ok {self.count} - {_description(r)}")
        elif r.status == "skip":
            self._write(f"ok {self.count} - {_description(r)} # SKIP {r.message}")
        else:
            self._write(f"not ok {self.count} - {_description(r)}")
            self._write("  ---")
            for key, value in (("message", r.message), ("severity", r.status),
                               ("file", r.file), ("line", r.line), ("expected", r.expected),
                               ("actual", r.actual)):
                if value != "":
                    # JSON strings and numbers are YAML scalars: no quoting rules to get wrong
                    self._write(f"  {key}: {json.dumps(value)}")
            self._write("  ...")

    def finish(self, runs: list["ScriptRun"], interrupted: str = "", status: int = 0) -> None:
        """The end of the report (`interrupted`: the signal's name; `status`: the exit status
        then, 128+N)."""
        from ocish.replay import exit_status
        if self.fmt == "tap":
            s = _summary(runs)
            if interrupted:
                self._write(f"Bail out! interrupted by {interrupted}")
                return
            self._write(f"1..{self.count}" + ("" if self.count else " # SKIP no expectations"))
            self._write(f"# {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
                        f"{s['errors']} could not run, in {s['duration']:.2f}s")
        elif self.fmt == "json":
            status = status if interrupted else exit_status(runs)
            self._write(json.dumps(to_json(runs, status, interrupted), indent=2))
        else:
            self._write(junit(runs, [f"interrupted by {interrupted}"] if interrupted else []))


def to_json(runs: list["ScriptRun"], status: int, interrupted: str = "") -> dict:
    from dataclasses import asdict
    return {"exit_status": status, "interrupted": interrupted, "summary": _summary(runs),
            "errors": [run.error for run in runs if any(r.kind == "syntax" for r in run.results)],
            "scripts": [{"file": run.file, "id": run.id, "status": run.status,
                         "error": run.error, "duration": round(run.duration, 3),
                         "output": run.output,
                         "results": [{**asdict(r), "duration": round(r.duration, 3)}
                                     for r in run.results]} for run in runs]}


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)


def junit(runs: list["ScriptRun"], errors: list[str]) -> str:
    """The JUnit XML document (errors: why nothing, or not everything, ran)."""
    import xml.etree.ElementTree as ET
    from ocish.variables import strip_comment
    s = _summary(runs)
    root = ET.Element("testsuites", name="ocish replay", tests=str(s["tests"] + len(errors)),
                      failures=str(s["failed"]), errors=str(s["errors"] + len(errors)),
                      time=f"{s['duration']:.3f}")
    host = socket.gethostname()
    for run in runs:
        ss = _summary([run])
        classname = os.path.splitext(run.file)[0].strip("./").replace("/", ".") or "script"
        suite = ET.SubElement(root, "testsuite", name=run.file, tests=str(ss["tests"]),
                              failures=str(ss["failed"]), errors=str(ss["errors"]),
                              skipped=str(ss["skipped"]), time=f"{run.duration:.3f}",
                              timestamp=time.strftime("%Y-%m-%dT%H:%M:%S",
                                                      time.localtime(run.started)),
                              hostname=host, file=run.file)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="container id", value=run.id)
        for r in run.results:
            case = ET.SubElement(suite, "testcase",
                                 name=_clean(f"line {r.line}: {strip_comment(r.text)}"),
                                 classname=classname, time=f"{r.duration:.3f}")
            if r.status == "skip":
                ET.SubElement(case, "skipped", message=_clean(r.message))
            elif r.status in ("fail", "error"):
                tag = "failure" if r.status == "fail" else "error"
                el = ET.SubElement(case, tag, message=_clean(r.message),
                                   type={"expect": "expectation", "syntax": "script"}.get(
                                     r.kind, "command"))
                # a script that cannot run has no expected and actual values: no empty lines
                el.text = _clean(f"{r.file}:{r.line}: {r.text}\n" + (
                    f"expected: {r.expected}\nactual:   {r.actual}\n"
                    if r.expected or r.actual else f"{r.message}\n"))
        if run.output:
            ET.SubElement(suite, "system-out").text = _clean(run.output)
    if errors:
        suite = ET.SubElement(root, "testsuite", name="ocish replay", tests=str(len(errors)),
                              failures="0", errors=str(len(errors)), hostname=host)
        for e in errors:
            case = ET.SubElement(suite, "testcase", name=_clean(e), classname="replay")
            ET.SubElement(case, "error", message=_clean(e), type="script")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
