"""`--paths` prints facts as `expect` reads them: every line it prints, copied verbatim into
`expect PATH == VALUE`, holds. Checked on the same data the line was printed from (a debugger in
this process, so that usage counters cannot move between the two reads), for every source at
several stops, and verbatim in a scripted session for the sources whose values hold still."""
from __future__ import annotations

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root


def split_line(line: str) -> tuple[str, str]:
    """A `--paths` line: the path (brackets may hold spaces), then the value."""
    depth = 0
    for i, c in enumerate(line):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c.isspace() and depth == 0:
            return line[:i], line[i:].strip()
    raise AssertionError(f"no value on {line!r}")


def _round_trip(source: str, view, lookup) -> int:
    """Print `view` as --paths does, read every line back as an expectation, check it against
    the same view; the number of lines checked."""
    from ocish import expect, facts, render
    from ocish.commands import Fact
    text = render.paths([Fact(p, v) for p, v in facts.flatten(view, source)])
    lines = text.splitlines()
    for line in lines:
        path, value = split_line(line)
        exp = expect.parse(f"{path} == {value}")
        done = expect.evaluate(exp, lambda src: view, lambda _line: None, lookup)
        assert done.ok, f"{line!r}: {done.message}"
    return len(lines)


@pytest.fixture
def debugger(ocish, make_bundle):
    from ocish.commands import Commands
    from ocish.debugger import Debugger
    dbg = Debugger(ocish.root)
    cmds = Commands(dbg)
    cmds.default_id = cid()
    out = cmds.run(f"load {make_bundle(['sleep', '100'])}")
    assert out.ok, out.error
    yield cmds
    dbg.teardown()
    cmds.close()


def test_every_paths_line_reads_back_as_an_expectation(debugger):
    from ocish import facts
    from ocish.commands import Args
    from ocish.inspect import TOPICS
    cmds, checked = debugger, 0
    for stop in ("until mounts", "until caps", "continue", "start"):
        assert cmds.run(stop).ok
        for topic in TOPICS:
            view = facts.topic_view(topic, cmds.do_inspect(Args([topic])))
            checked += _round_trip(topic, view, cmds.variable)
        if stop != "start":
            checked += _round_trip("stages", facts.stages_view(cmds.dbg.pipeline()),
                                   cmds.variable)
        if stop in ("continue", "start"):
            checked += _round_trip("state", cmds.dbg.oci_state(), cmds.variable)
            checked += _round_trip("ps", cmds.dbg.ps(), cmds.variable)
    assert checked > 300


def test_paths_lines_pasted_into_expect_in_a_session(session, make_bundle):
    """The reported case: `stages.cgroup.items == {}` as `stages --paths` prints it."""
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("until mounts")
    for command in ("stages --paths", "inspect ids --paths", "inspect ns --paths"):
        lines = s.cmd(command).splitlines()
        assert lines
        for line in lines:
            path, value = split_line(line)
            out = s.cmd(f"expect {path} == {value}")
            assert out.startswith("ok: "), f"{line!r}: {out}"
    assert "ok: stages.cgroup.items == {}" in s.cmd("expect stages.cgroup.items == {}")
