"""Expectations without a container: the parser, paths into views, loose comparison, $variables,
the snapshot rules of `record --expect`, and `bundle set`'s JSON-pointer edits."""
from __future__ import annotations

import json

import pytest

from ocish import facts, snapshot
from ocish.bundle import edit_config
from ocish.expect import (HOST, ExpectSyntaxError, bare_meaning, check_clause, compare, equal,
                          parse)
from ocish.script import ScriptSyntaxError
from ocish.script import parse as parse_script
from ocish.variables import expand_line, split_words, strip_comment
from runtime.errors import OcishError

VARS = {"bundle": "/tmp/my bundle", "id": "web", "empty": ""}


def lookup(name: str) -> str:
    if name in VARS:
        return VARS[name]
    raise OcishError(f"unknown variable ${name}")


# -- parsing ----------------------------------------------------------------------------------

def test_fact_form_clauses_operators_and_values():
    e = parse("ns.pid != host, caps.effective contains CAP_KILL, mounts[/proc].fstype == proc")
    assert e.command == "" and not e.fails
    assert [c.path.keys for c in e.clauses] == [("ns", "pid"), ("caps", "effective"),
                                                ("mounts", "/proc", "fstype")]
    assert [c.op for c in e.clauses] == ["!=", "contains", "=="]
    assert e.clauses[0].value.value(lookup) is HOST


def test_command_form_with_fails_and_an_arrow_inside_quotes():
    e = parse("exec sh -c 'echo a -> b' -> status == 0, stdout == \"a -> b\"")
    assert e.command == "exec sh -c 'echo a -> b'"
    assert e.clauses[1].value.value(lookup) == "a -> b"
    f = parse("continue -> fails, stage == mounts, errno == ENODEV, pointer == /mounts/1")
    assert f.fails and f.command == "continue" and len(f.clauses) == 4


def test_values():
    assert bare_meaning("64MiB") == 64 << 20 and bare_meaning("1G") == 1 << 30
    assert bare_meaning("-3") == -3 and bare_meaning("0.5") == 0.5
    assert bare_meaning("true") is True and bare_meaning("null") is None
    assert bare_meaning("1.2.0") == "1.2.0" and bare_meaning("/mounts/3") == "/mounts/3"
    e = parse('status == "host", state.id == $id, state.bundle == "$bundle/x", env.y == \'$id\'')
    got = [c.value.value(lookup) for c in e.clauses]
    assert got == ["host", "web", "/tmp/my bundle/x", "$id"]
    e = parse("caps.effective == [CAP_KILL, \"CAP X\", 3]")
    assert [w.value(lookup) for w in e.clauses[0].value] == ["CAP_KILL", "CAP X", 3]
    e = parse("state.bundle matches ^$bundle$")  # a variable matches literally in a pattern
    assert e.clauses[0].value.text(lookup, pattern=True) == r"^/tmp/my\ bundle$"


def test_a_comment_ends_the_expectation():
    assert parse("status == created   # after setup").clauses[0].value.value(lookup) == "created"
    assert parse("status == 'a # b'").clauses[0].value.value(lookup) == "a # b"


@pytest.mark.parametrize("text, message", [
    ("", "nothing to check"),
    ("status = created", "not '=' (== compares)"),
    ("nosuch.x == 1", "unknown source 'nosuch'"),
    ("status == created created", "a ',' between checks"),
    ("status == 'open", "a ' without its closing '"),
    ("status ==", "a value is missing"),
    ("-> status == 0", "no command before ->"),
    ("exec id ->", "a check is missing after ->"),
    ("status not == created", "or `not` before"),
    ("mounts[/proc.fstype == x", "a [ without its ]"),
    ("caps.effective == [a, b", "a list's items are separated by commas"),
    ('state.id matches "(unclosed"', "the pattern '(unclosed' is not a regular expression: "
                                     "missing ), unterminated subpattern"),
    ('exec id -> stdout matches "a[" , status == 0', "the pattern 'a[' is not a regular"),
    ("--json state.id == x", "expect takes no options ('--json'): what it returns is a check"),
])
def test_syntax_errors_say_what_and_where(text, message):
    """... a bad regular expression too: found when the script is read (FILE:LINE, exit 2),
    not when the line runs."""
    with pytest.raises(ExpectSyntaxError) as e:
        parse(text)
    assert message in str(e.value)


# -- paths and views ----------------------------------------------------------------------------

VIEW = {"mounts": {"/": {"fstype": "ext4"}, "/proc": {"fstype": "proc"}},
        "nspid": [4711, 1], "env": {"PATH": "/bin"}, "count": 7}


def test_paths():
    assert facts.parse_path("mounts[/proc].fstype").keys == ("mounts", "/proc", "fstype")
    assert facts.parse_path("a[b c][0].d").keys == ("a", "b c", "0", "d")
    assert facts.lookup(VIEW, ("nspid", "-1"), "proc") == 1
    assert facts.lookup(VIEW, ("nspid", "count"), "proc") == 2
    assert facts.lookup(VIEW, ("count",), "x") == 7  # a key named count wins
    assert facts.lookup(VIEW, ("mounts", "count"), "x") == 2
    with pytest.raises(facts.PathError) as e:
        facts.lookup(VIEW, ("mounts", "/sys"), "x")
    assert str(e.value) == "x.mounts has no [/sys] (its keys: [/], [/proc])"
    with pytest.raises(facts.PathError):
        facts.parse_path("a..b")


def test_flatten_names_paths_as_expect_reads_them():
    rows = dict(facts.flatten(VIEW, "v"))
    assert rows == {"v.mounts[/].fstype": "ext4", "v.mounts[/proc].fstype": "proc",
                    "v.nspid": [4711, 1], "v.env.PATH": "/bin", "v.count": 7}
    for path, value in rows.items():  # each row reads back as an expectation that holds
        c = parse(f"stages{path[1:]} == {facts.format_value(value)}").clauses[0]
        assert check_clause(c, {"stages": VIEW}, "x", c.path.keys, None, lookup).ok


def test_format_value_round_trips():
    for v in ["plain", "two words", 'q"uote', "$dollar", "back\\slash", "new\nline", "1000",
              "true", "host", "", "a,b", 12, -1.5, True, None, ["x y", 3, "CAP_KILL"]]:
        c = parse(f"status == {facts.format_value(v)}").clauses[0]
        got = [w.value(lookup) for w in c.value] if isinstance(c.value, list) else c.value.value(lookup)
        assert got == v, (v, facts.format_value(v))


# -- comparison ---------------------------------------------------------------------------------

def test_loose_equality_and_operators():
    assert equal("1000", 1000) and equal(1000, "1000") and not equal("1000", 999)
    assert equal([1, "a"], ["1", "a"]) and not equal([1], [1, 2])
    assert equal({"a": 1}, {"a": "1"}) and not equal(None, "") and equal(None, None)
    assert not equal(0, False) and equal(True, True)
    assert compare("unlimited", ">", 1 << 40) == (True, "")
    assert compare(5, "<=", 5)[0] and not compare(6, "<", 5)[0]
    assert compare("abc", ">", 1) == (False, "not a number")
    assert compare(["CAP_KILL"], "contains", "CAP_KILL")[0]
    assert compare("hello world", "contains", "lo w")[0]
    assert compare({"PATH": "x"}, "has", "PATH")[0] and not compare({"a": 1}, "has", "b")[0]
    assert compare("shared:12", "matches", r"^shared:\d+$")[0]
    assert compare(["a", "bc"], "matches", "^b")[0]
    assert compare("created", "in", ["created", "running"])[0]
    assert compare("x", "matches", "(")[1].startswith("the pattern is not a regular expression")


def test_a_clause_against_the_host_and_its_messages():
    view, host = {"pid": 4026532000}, {"pid": 4026531836}
    c = parse("ns.pid != host").clauses[0]
    r = check_clause(c, view, "ns", ("pid",), lambda: host, lookup)
    assert r.ok and r.expected == "!= host (4026531836)"
    c = parse("ns.pid == host").clauses[0]
    r = check_clause(c, view, "ns", ("pid",), lambda: host, lookup)
    assert (r.ok, r.expected, r.actual) == (False, "== host (4026531836)", "4026532000")
    r = check_clause(c, view, "state", ("pid",), None, lookup)
    assert r.actual.startswith("(no host value")
    c = parse("ns.user not has 3").clauses[0]
    r = check_clause(c, {"user": [1, 2]}, "ns", ("user",), None, lookup)
    assert r.ok and r.expected == "not has 3"
    c = parse("state.id == $nope").clauses[0]
    with pytest.raises(OcishError, match=r"unknown variable \$nope"):
        check_clause(c, {"id": "x"}, "state", ("id",), None, lookup)


# -- $variables in command lines ----------------------------------------------------------------

def test_expand_line_quotes_as_sh_would():
    import shlex
    assert shlex.split(expand_line("load $bundle", lookup)) == ["load", "/tmp/my bundle"]
    assert shlex.split(expand_line('exec echo "$id:${bundle}"', lookup)) == \
        ["exec", "echo", "web:/tmp/my bundle"]
    assert shlex.split(expand_line("exec echo '$id' \\$id", lookup)) == ["exec", "echo", "$id", "$id"]
    assert shlex.split(expand_line('exec echo "\\$id" $empty x', lookup)) == \
        ["exec", "echo", "$id", "", "x"]
    assert expand_line("x ${nope:-fallback} ^a$", lookup) == "x fallback ^a$"
    assert expand_line("stages # $nope in a comment", lookup) == "stages # $nope in a comment"
    with pytest.raises(OcishError, match=r"unknown variable \$nope"):
        expand_line("load $nope", lookup)
    assert strip_comment("a 'b # c' # d") == "a 'b # c'"


def test_a_default_expands_its_own_references_as_sh_does():
    assert expand_line("echo ${unset:-$id}", lookup) == "echo web"
    assert expand_line("echo ${unset:-${id}/x}", lookup) == "echo web/x"
    assert shlex_split(expand_line("load ${unset:-$bundle}", lookup)) == ["load", "/tmp/my bundle"]
    assert expand_line("echo ${id:-$nope}", lookup) == "echo web"  # set: the default is not read
    assert expand_line(r"echo ${unset:-a\}b}", lookup) == "echo 'a}b'"
    with pytest.raises(OcishError, match=r"unknown variable \$nope"):
        expand_line("echo ${unset:-$nope}", lookup)
    # in an expectation's value too
    c = parse("state.id == ${unset:-$id}").clauses[0]
    assert check_clause(c, {"id": "web"}, "state", ("id",), None, lookup).ok


def test_a_hash_starts_a_comment_only_at_the_start_of_a_word():
    """As in sh, on both sides of an expectation's `->`."""
    assert split_words("exec echo a#b # a comment") == ["exec", "echo", "a#b"]
    assert split_words("exec echo 'a #b' \\#c #d") == ["exec", "echo", "a #b", "#c"]
    e = parse("exec echo a#b -> stdout == a#b  # why")
    assert e.command == "exec echo a#b" and e.clauses[0].text == "stdout == a#b"
    assert split_words(e.command) == ["exec", "echo", "a#b"]


def shlex_split(text: str) -> list[str]:
    import shlex
    return shlex.split(text)


# -- scripts ------------------------------------------------------------------------------------

def test_script_syntax_errors_have_file_and_line(tmp_path):
    f = tmp_path / "s.ocish"
    f.write_text("# a comment\n\nstages\nbreak pivot\nstep 2\nexpect status == created\n")
    s = parse_script(str(f))
    assert [(ln.number, ln.command) for ln in s.lines] == [(3, "stages"), (4, "break"),
                                                           (5, "step"), (6, "expect")]
    for body, line, message in [("stages\nfoo\n", 2, "unknown command 'foo'"),
                                ("stages --nope\n", 1, "stages: unknown flag --nope"),
                                ("exec 'open\n", 1, "cannot parse the line: no closing quotation"),
                                ("\nexpect exec -> x == 1\n", 2, "exec: no command"),
                                ("attach web\n", 1, "attach: replay sets up its own"),
                                ("quit --keep\n", 1, "quit --keep: a replay removes everything"),
                                ("record x.ocish\n", 1, "record: record writes")]:
        f.write_text(body)
        with pytest.raises(ScriptSyntaxError) as e:
            parse_script(str(f))
        assert (e.value.line, str(e.value).startswith(f"{f}:{line}: ")) == (line, True)
        assert message in str(e.value)


# -- record --expect: literals, relations, host -------------------------------------------------

def _lines(topic, view, host, ctx=None):
    return snapshot.expectations(topic, view, host, lambda t: t.replace("/run/x/web", "${root}/${id}"),
                                 ctx)


def test_snapshot_rules():
    ns = _lines("ns", {"pid": 2, "user": 1}, {"pid": 1, "user": 1})
    assert ns == ["expect ns.pid != host", "expect ns.user == host"]
    proc = _lines("proc", {"pid": 4711, "ppid": 1, "nspid": [4711, 1], "state": "S (sleeping)",
                           "exe": "/bin/busybox", "threads": 1},
                  {"pid": 1, "exe": "/usr/bin/python3"})
    assert proc == ["expect proc.pid > 0", "expect proc.ppid > 0", "expect proc.nspid.count == 2",
                    "expect proc.nspid[-1] == 1", 'expect proc.state matches "^[RSD]"',
                    "expect proc.exe == /bin/busybox", "expect proc.threads == 1"]
    cg = _lines("cgroup", {"memory": {"usage": 1000, "limit": 64 << 20, "peak": 0, "failcnt": 0,
                                      "oom_kill": 2, "at_limit": False}}, None)
    assert cg == ["expect cgroup.memory.usage > 0", "expect cgroup.memory.limit == 67108864",
                  "expect cgroup.memory.peak >= 0", "expect cgroup.memory.failcnt == 0",
                  "expect cgroup.memory.oom_kill > 0"]
    mounts = _lines("mounts", {"/": {"fstype": "ext4", "source": "/dev/vda", "options": "ro,relatime",
                                     "mount_id": 5},
                               "/proc": {"fstype": "proc", "source": "proc",
                                         "propagation": "shared:12", "super_options": "rw"}}, None)
    assert mounts == ['expect mounts[/].options matches "^ro(,|\\$)"',
                      "expect mounts[/proc].fstype == proc", "expect mounts[/proc].source == proc",
                      'expect mounts[/proc].propagation matches "^shared:[0-9]+\\$"']
    state = _lines("state", {"id": "web", "pid": 9, "created": "2024-01-01T00:00:00Z",
                             "bundle": "/run/x/web/b", "annotations": {}}, None)
    assert state == ["expect state.id == web", "expect state.pid > 0",
                     'expect state.created matches "^[0-9]{4}-[0-9]{2}-[0-9]{2}T"',
                     "expect state.bundle == ${root}/${id}/b", "expect state.annotations.count == 0"]
    assert _lines("env", {"A": "1"}, {"A": "1"}) == ["expect env == host"]
    assert _lines("fds", {"1": {"target": "pipe:[77]", "host": True}, "9": {"target": "/x"}},
                  {"fds[1].target": "x"}) == \
        ['expect fds[1].target matches "^pipe:\\\\[[0-9]+\\\\]\\$"', "expect fds[1].host == true"]


def test_snapshot_rlimits_and_caps_follow_the_stage_that_sets_them():
    config = {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]}}
    view = {"nofile": {"soft": 1024}, "nproc": {"soft": 50}}
    host = {"nofile": {"soft": 1024}, "nproc": {"soft": 50}}
    before = snapshot.Context(config, lambda stage: False)
    after = snapshot.Context(config, lambda stage: True)
    assert _lines("rlimits", view, host, before) == ["expect rlimits.nofile.soft == host",
                                                     "expect rlimits.nproc.soft == host"]
    assert _lines("rlimits", view, host, after) == ["expect rlimits.nofile.soft == 1024",
                                                    "expect rlimits.nproc.soft == host"]
    caps = {"effective": ["CAP_KILL"]}
    assert _lines("caps", caps, caps, before) == ["expect caps.effective == host"]
    assert _lines("caps", caps, caps, after) == ["expect caps.effective == [CAP_KILL]"]


# -- bundle set / unset ---------------------------------------------------------------------------

def test_edit_config_dash_appends_creating_the_list(tmp_path):
    """`-` appends: to a list that is not there yet a one-item list, made with the objects on
    the way (a hook array: `load` reads it); on an object it is refused, config unchanged."""
    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": ["sh"]}}))
    edit_config(str(tmp_path), "/hooks/createRuntime/-", '{"path": "/bin/true"}')
    edit_config(str(tmp_path), "/hooks/createRuntime/-", '{"path": "/bin/false"}')
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["hooks"] == {"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/false"}]}
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(OcishError) as e:
        edit_config(str(tmp_path), "/hooks/-", '{"path": "/bin/true"}')
    assert str(e.value).startswith("config /hooks: `-` appends to a list, and this is an object")
    with pytest.raises(OcishError, match="config /process/args/-: '-' is not an index"):
        edit_config(str(tmp_path), "/process/args/-/x", "1")
    assert (tmp_path / "config.json").read_text() == before


def test_edit_config_by_json_pointer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"mounts": [{"destination": "/a"}],
                                                      "process": {"args": ["sh"]}}))
    assert edit_config(str(tmp_path), "/linux/resources/pids/limit", "32") == 32
    edit_config(str(tmp_path), "/mounts/-", '{"destination": "/b"}')
    edit_config(str(tmp_path), "/hostname", "web")  # not JSON: a string
    edit_config(str(tmp_path), "/process/args/0", '"sleep"')
    edit_config(str(tmp_path), "/mounts/0", None, remove=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec == {"mounts": [{"destination": "/b"}], "process": {"args": ["sleep"]},
                    "linux": {"resources": {"pids": {"limit": 32}}}, "hostname": "web"}
    with pytest.raises(OcishError, match="config /mounts/5: '5' is not an index of a list of 1"):
        edit_config(str(tmp_path), "/mounts/5", "{}")
    with pytest.raises(OcishError, match="config /nope: no such item"):
        edit_config(str(tmp_path), "/nope", None, remove=True)
    with pytest.raises(OcishError, match="config /hostname: not an object or a list"):
        edit_config(str(tmp_path), "/hostname/x", "1")
    # what starts as JSON and breaks is a mistake, not a string; one line, config unchanged
    before = (tmp_path / "config.json").read_text()
    for broken, why in (("[broken", "expecting value, column 2"),
                        ("{a:", "expecting property name enclosed in double quotes, column 2")):
        with pytest.raises(OcishError) as e:
            edit_config(str(tmp_path), "/process/args", broken)
        assert str(e.value).startswith(f"bundle set /process/args: {broken} is not JSON ({why}): "
                                       "give the value in single quotes")
        assert "\n" not in str(e.value)
    assert (tmp_path / "config.json").read_text() == before
