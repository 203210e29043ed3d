"""`ocish replay` on the scripts of tests/replay/scripts: each one's exit status and report (TAP
read back by Perl's TAP::Parser, the JSON document, JUnit XML checked against the rules of the
common schema), nothing left behind on any path (a failure, Ctrl-C, SIGTERM), and `record`'s
scripts replayed green on other runs."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import REPO, children, cid, mount_count, needs_root, ocish_cmd
from tests.shell.conftest import cgroup_dirs, session  # noqa: F401 (a fixture)

pytestmark = needs_root
SCRIPTS = Path(__file__).parent / "scripts"

# script -> (exit status, passed, failed, skipped, could not run)
EXPECTED = {
    "first-steps": (0, 17, 0, 0, 0),
    "namespaces": (0, 8, 0, 0, 0),
    "mounts": (0, 10, 0, 0, 0),
    "cgroup-limits": (0, 8, 0, 0, 0),
    "user-and-caps": (0, 10, 0, 0, 0),
    "userns": (0, 6, 0, 0, 0),
    "expected-failure": (0, 5, 0, 0, 0),
    "exit-at-start": (0, 3, 0, 0, 0),
    "fails-expectations": (1, 0, 1, 4, 0),
    "fails-command": (1, 0, 1, 1, 0),
    "missing-bundle": (2, 0, 0, 1, 1),
}
UNREADABLE = {  # nothing runs: exit 2, FILE:LINE on stderr
    "syntax-error": "syntax-error.ocish:4: unknown command 'contnue': did you mean continue",
    "bad-expectation": "bad-expectation.ocish:4: expect: after status, an operator",
}


class Replay:
    """Runs `ocish replay` with its temporary files in a directory of its own (TMPDIR), so
    that whatever it leaves there is seen."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tmp = tempfile.mkdtemp(prefix="replay-test-")
        os.chmod(self.tmp, 0o755)
        self.ids: list[str] = []

    def env(self) -> dict:
        return dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=self.tmp)

    def cmd(self, *args: str) -> list[str]:
        c = cid()
        self.ids.append(c)
        return ocish_cmd() + ["replay", *args, "--root", self.root, "--id", c]

    def __call__(self, *args: str, timeout: float = 120,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              env=dict(self.env(), **(env or {})), cwd=REPO,
                              stdin=subprocess.DEVNULL)

    def assert_clean(self) -> None:
        """No state dir, cgroup, mount, process or temporary file left."""
        assert not os.listdir(self.tmp), f"left in TMPDIR: {os.listdir(self.tmp)}"
        assert not os.path.isdir(self.root) or not os.listdir(self.root)
        for c in self.ids:
            assert not cgroup_dirs(c), f"cgroups left: {cgroup_dirs(c)}"
        with open("/proc/self/mountinfo") as f:
            assert self.tmp not in f.read()


@pytest.fixture
def replay(ocish):
    r = Replay(ocish.root)
    yield r
    shutil.rmtree(r.tmp, ignore_errors=True)


def script(name: str) -> str:
    return str((SCRIPTS / f"{name}.ocish").relative_to(REPO))


def tap_parse(text: str) -> dict:
    """What Perl's TAP::Parser (the parser of `prove`) makes of a TAP stream."""
    perl = r"""
        use TAP::Parser; use JSON::PP;
        my $tap = do { local $/; <STDIN> };
        my $p = TAP::Parser->new({tap => $tap});
        my @yaml;
        while (my $r = $p->next) { push @yaml, $r->data if $r->is_yaml }
        print encode_json({version => $p->version, plan => $p->plan, tests_run => $p->tests_run,
                           passed => [$p->passed], failed => [$p->failed],
                           skipped => [$p->skipped], errors => [$p->parse_errors],
                           bailed => $p->can('is_bailout') ? 0 : 0, yaml => \@yaml});
    """
    p = subprocess.run(["perl", "-e", perl], input=text, capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout)


# -- the junit-10.xsd rules (Jenkins' xunit plugin, the schema CI systems read) -----------------
_TIME = re.compile(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$")
_CASE_CHILDREN = {"skipped", "error", "failure", "system-out", "system-err"}
_SUITE_CHILDREN = {"testsuite", "properties", "testcase", "system-out", "system-err"}


def check_junit(text: str) -> ET.Element:
    """Parse `text` and check it against junit-10.xsd's rules: element names and nesting, the
    required attributes, the time format. Returns the root."""
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert set(root.attrib) <= {"name", "time", "tests", "failures", "errors"}
    assert _TIME.match(root.get("time", "0"))
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors"):
            assert attr in suite.attrib, attr
        assert set(suite.attrib) <= {"name", "tests", "failures", "errors", "group", "time",
                                     "skipped", "timestamp", "hostname", "id", "package",
                                     "file", "log", "url"}
        assert _TIME.match(suite.get("time", "0"))
        for child in suite:
            assert child.tag in _SUITE_CHILDREN, child.tag
            if child.tag == "properties":
                assert all(p.tag == "property" and set(p.attrib) == {"name", "value"}
                           for p in child)
            if child.tag != "testcase":
                continue
            assert "name" in child.attrib
            assert set(child.attrib) <= {"name", "time", "classname", "group"}
            for c in child:
                assert c.tag in _CASE_CHILDREN, c.tag
                if c.tag in ("failure", "error", "skipped"):
                    assert set(c.attrib) <= {"type", "message"}
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
    return root


# -- every script: exit status and report -------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_script_exit_status_and_reports(replay, name):
    status, passed, failed, skipped, errors = EXPECTED[name]
    p = replay(script(name))
    assert p.returncode == status, p.stdout + p.stderr
    tap = tap_parse(p.stdout)
    total = passed + failed + skipped + errors
    assert tap["errors"] == [] and tap["version"] == 13
    assert tap["plan"] == f"1..{total}" and tap["tests_run"] == total
    assert len(tap["failed"]) == failed + errors and len(tap["skipped"]) == skipped
    assert f"# {passed} passed, {failed} failed, {skipped} skipped, {errors} could not run" in p.stdout
    p = replay(script(name), "--format", "json")
    assert p.returncode == status
    doc = json.loads(p.stdout)
    assert doc["exit_status"] == status
    s = doc["summary"]
    assert (s["passed"], s["failed"], s["skipped"], s["errors"]) == (passed, failed, skipped, errors)
    (run,) = doc["scripts"]
    assert run["status"] == {0: "passed", 1: "failed", 2: "error"}[status]
    assert all(r["file"] == script(name) and r["line"] > 0 for r in run["results"])
    replay.assert_clean()


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_an_unreadable_script_runs_nothing_and_exits_2(replay, name):
    for fmt in ("tap", "json", "junit"):
        p = replay(script(name), "--format", fmt)
        assert p.returncode == 2
        assert UNREADABLE[name] in p.stderr
        assert "Traceback" not in p.stderr
        if fmt == "tap":
            assert p.stdout.splitlines()[-1].startswith(f"Bail out! {script(name)}:4: ")
        elif fmt == "json":
            doc = json.loads(p.stdout)
            assert doc["errors"][0].startswith(f"{script(name)}:4: ")
            # the script is listed, with its error, and counted
            assert doc["exit_status"] == 2 and doc["summary"]["errors"] == 1
            [run] = doc["scripts"]
            assert (run["file"], run["status"]) == (script(name), "error")
            assert [(r["kind"], r["line"]) for r in run["results"]] == [("syntax", 4)]
        else:
            suite = check_junit(p.stdout).find("testsuite")
            assert suite.get("name") == script(name) and suite.get("errors") == "1"
            error = suite.find("testcase/error")
            assert error.get("message").startswith("the script cannot run: ")
            # FILE:LINE and why; no empty expected:/actual: lines
            assert error.text.startswith(f"{script(name)}:4: "), error.text
            assert "expected:" not in error.text and "actual:" not in error.text
    assert not os.listdir(replay.tmp)  # not even the bundle of line 2 was built


def test_what_cannot_run_is_reported_in_every_format(replay, tmp_path):
    """A missing --bundle, no script, an unknown option: the error on stderr and the report
    on stdout (a TAP `Bail out!`, a JSON errors document, a JUnit <error>), exit 2."""
    missing = f"ocish replay: --bundle {tmp_path}/nothing: no config.json there"
    cases = [((script("namespaces"), "--bundle", f"{tmp_path}/nothing"), missing),
             ((), "ocish replay: no script given; usage: "),
             ((script("namespaces"), "--bogus"), "ocish replay: unrecognized arguments: --bogus")]
    for args, error in cases:
        for fmt in ("tap", "json", "junit"):
            p = replay(*args, "--format", fmt)
            assert p.returncode == 2 and p.stderr.startswith(error), p.stderr
            if fmt == "tap":
                assert p.stdout.splitlines() == ["TAP version 13", f"Bail out! {p.stderr.strip()}"]
            elif fmt == "json":
                doc = json.loads(p.stdout)
                assert doc["exit_status"] == 2 and doc["errors"] == [p.stderr.strip()]
                assert doc["scripts"] == [] and doc["summary"]["errors"] == 1
            else:
                error_el = check_junit(p.stdout).find("testsuite/testcase/error")
                assert error_el.get("message") == p.stderr.strip()
    replay.assert_clean()


def test_an_unreadable_script_does_not_stop_the_others(replay):
    """`replay good bad good`: both good ones run and pass, the bad one is a test point that
    could not run (FILE:LINE), exit status 2."""
    names = ["exit-at-start", "syntax-error", "namespaces"]
    for fmt in ("tap", "json", "junit"):
        p = replay(*[script(n) for n in names], "--format", fmt)
        assert p.returncode == 2, p.stderr
        assert UNREADABLE["syntax-error"] in p.stderr and "Traceback" not in p.stderr
        if fmt == "tap":
            tap = tap_parse(p.stdout)
            assert len(tap["passed"]) == EXPECTED["exit-at-start"][1] + EXPECTED["namespaces"][1]
            assert tap["failed"] == [4] and "Bail out!" not in p.stdout
            assert f"not ok 4 - {script('syntax-error')}:4: contnue" in p.stdout
            assert (tap["yaml"][0]["severity"], int(tap["yaml"][0]["line"])) == ("error", 4)
        elif fmt == "json":
            doc = json.loads(p.stdout)
            assert [s["status"] for s in doc["scripts"]] == ["passed", "error", "passed"]
            bad = doc["scripts"][1]["results"]
            assert [(r["kind"], r["status"], r["line"]) for r in bad] == [("syntax", "error", 4)]
            assert doc["errors"][0].startswith(f"{script('syntax-error')}:4: unknown command")
        else:
            suites = check_junit(p.stdout).findall("testsuite")
            assert [s.get("name") for s in suites] == [script(n) for n in names]
            assert suites[1].find("testcase/error").get("message").startswith(
                "the script cannot run: unknown command 'contnue'")
            assert suites[2].get("errors") == "0" and suites[2].get("tests") == "8"
    replay.assert_clean()


def test_a_failed_expectation_shows_file_line_expected_and_actual(replay):
    p = replay(script("fails-expectations"), "--keep-going")
    assert p.returncode == 1
    tap = tap_parse(p.stdout)
    assert len(tap["failed"]) == 5  # --keep-going: every one was checked
    by_line = {int(y["line"]): y for y in tap["yaml"]}
    assert set(by_line) == {5, 6, 7, 8, 9}
    assert all(y["file"] == script("fails-expectations") for y in tap["yaml"])
    ns = by_line[5]
    assert re.fullmatch(r"== host \(\d+\)", ns["expected"]) and ns["actual"].isdigit()
    assert ns["expected"] != f"== host ({ns['actual']})"
    assert (by_line[6]["expected"], by_line[6]["actual"]) == ("== sysfs", "proc")
    assert (by_line[7]["expected"], by_line[7]["actual"]) == ("== web", "ocish")
    assert by_line[7]["message"] == "stdout == web: expected == web, actual ocish"
    assert (by_line[8]["expected"], by_line[8]["actual"]) == ("== running", "created")
    assert by_line[9]["expected"] == "contains CAP_SYS_ADMIN"
    assert f"not ok 2 - {script('fails-expectations')}:6: expect mounts[/proc].fstype == sysfs" \
        in p.stdout
    replay.assert_clean()


def test_a_command_failing_unexpectedly_fails_the_script_and_says_why(replay):
    p = replay(script("fails-command"), "--format", "json")
    doc = json.loads(p.stdout)
    first, second = doc["scripts"][0]["results"]
    assert (first["kind"], first["status"], first["line"]) == ("command", "fail", 5)
    assert first["message"] == ('the command failed: stage mounts: mount "tmpfs" on "/dev" '
                                '(config /mounts/1): no such device')
    assert (second["status"], second["message"]) == ("skip", "not run: the script stopped at line 5")
    replay.assert_clean()


def test_junit_of_several_scripts(replay):
    names = ["first-steps", "fails-expectations", "missing-bundle", "exit-at-start"]
    p = replay(*[script(n) for n in names], "--format", "junit")
    assert p.returncode == 2  # one could not run: that wins over a failure
    root = check_junit(p.stdout)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [script(n) for n in names]
    assert root.get("tests") == str(sum(sum(EXPECTED[n][1:]) for n in names))
    assert root.get("failures") == "1" and root.get("errors") == "1"
    fail = suites[1].find("testcase/failure")
    assert fail.get("message") == "ns.pid == host: expected == host (%s), actual %s" % tuple(
        re.findall(r"\d+", fail.get("message"))[:2])
    assert f"{script('fails-expectations')}:5: expect ns.pid == host" in fail.text
    assert suites[1].find("testcase").get("classname") == "tests.replay.scripts.fails-expectations"
    assert suites[2].find("testcase/error").get("message").startswith("the script cannot run: bundle")
    assert len(suites[1].findall("testcase/skipped")) == 4
    # the container's own output is the script's, never the report's
    assert suites[3].find("system-out").text == "bye\n"
    replay.assert_clean()


def test_a_plain_exec_keeps_its_output_in_the_report(replay, tmp_path):
    """`exec` outside `expect`: what it printed is the script's output (JSON `output`, JUnit
    <system-out>), as the container's own is."""
    sc = tmp_path / "plain-exec.ocish"
    sc.write_text("bundle init -- sleep 100\nload $bundle\ncontinue\nstart\n"
                  "exec sh -c 'echo plain-out; echo plain-err >&2'\n"
                  "expect status == running\n")
    p = replay(str(sc), "--format", "json")
    assert p.returncode == 0, p.stdout
    output = json.loads(p.stdout)["scripts"][0]["output"]
    assert "plain-out\n" in output and "plain-err\n" in output, output
    p = replay(str(sc), "--format", "junit")
    assert "plain-out" in check_junit(p.stdout).find("testsuite/system-out").text
    replay.assert_clean()


def test_a_refused_load_and_restart_name_the_config_pointer(replay, tmp_path):
    """A config.json the runtime refuses fails `load` and `restart` with the SpecError's
    pointer as the failure's data (`expect load B -> fails, pointer == ...`), as a failed
    stage gives its own."""
    sc = tmp_path / "refused.ocish"
    sc.write_text("bundle init -- sleep 100\n"
                  "bundle set /linux/namespaces/- '{\"type\": \"user\"}'\n"
                  "expect load $bundle -> fails, pointer == /linux/uidMappings, "
                  "error contains 'needs uid mappings'\n"
                  "bundle set /linux/uidMappings '[{\"containerID\": 0, \"hostID\": 100000, "
                  "\"size\": 1}]'\n"
                  "expect restart -> fails, pointer == /linux/gidMappings\n")
    p = replay(str(sc), "--format", "json")
    assert p.returncode == 0, p.stdout
    assert json.loads(p.stdout)["summary"]["passed"] == 2
    replay.assert_clean()


def test_mounts_a_failed_script_left_in_its_scratch_dir_are_detached(replay, tmp_path):
    """A script that mounts in $tmp (tutorials/03-mounts.ocish) and fails before its own
    umount leaves nothing mounted, and its scratch directory goes."""
    sc = tmp_path / "mounts-left.ocish"
    sc.write_text("shell mkdir -p $tmp/a/b && mount --bind $tmp/a $tmp/a "
                  "&& mount -t tmpfs tmpfs $tmp/a/b && mount -t tmpfs tmpfs $tmp/a/b\n"
                  "expect shell grep -c \" $tmp/a/b \" /proc/self/mountinfo -> stdout == 2\n"
                  "expect shell true -> status == 1\n"
                  "shell umount $tmp/a/b $tmp/a/b $tmp/a\n")
    p = replay(str(sc), "--format", "json")
    assert p.returncode == 1, p.stdout
    assert json.loads(p.stdout)["summary"]["passed"] == 1
    replay.assert_clean()


def test_a_bad_regular_expression_is_a_syntax_error(replay, tmp_path):
    sc = tmp_path / "bad-regex.ocish"
    sc.write_text("bundle init -- sleep 100\ncontinue\nexpect state.id matches \"(unclosed\"\n")
    p = replay(str(sc))
    assert p.returncode == 2, p.stdout
    assert f"{sc}:3: expect: the pattern '(unclosed' is not a regular expression" in p.stderr
    assert p.stdout.splitlines()[-1].startswith(f"Bail out! {sc}:3: ")
    replay.assert_clean()


def test_bundle_option_and_variables(replay, make_bundle, tmp_path):
    b = make_bundle(["sleep", "100"])
    sc = tmp_path / "vars.ocish"
    sc.write_text("load $bundle\n"
                  "expect state -> fails, error matches 'not created yet'\n"
                  "continue\n"
                  "expect state.bundle == $bundle, state.id == $id, state.pid == $pid\n"
                  "expect state.rootfs == $rootfs, state.status == ${nothing:-created}\n"
                  "expect exec cat /etc/hostname -> stdout == \"$OCISH_TEST_NAME\"\n"
                  "expect exec sh -c 'echo $TERM' -> stdout == xterm   # quoted: the container's\n")
    p = replay(str(sc), "--bundle", str(b), env={"OCISH_TEST_NAME": "ocish"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "# 5 passed, 0 failed" in p.stdout
    p = replay(str(sc))  # no --bundle: $bundle is not set, the script cannot run
    assert p.returncode == 2
    assert "line 1: $bundle is not set yet: load a bundle, build one with `bundle init`, " \
           "or give replay --bundle" in p.stderr
    p = replay(str(sc), "--bundle", str(b))  # $OCISH_TEST_NAME is not set: cannot run
    assert p.returncode == 2 and "unknown variable $OCISH_TEST_NAME" in p.stdout
    p = replay(str(sc), "--bundle", str(tmp_path / "nothing"))
    assert p.returncode == 2 and "no config.json there" in p.stderr
    replay.assert_clean()


# -- stop signals ---------------------------------------------------------------------------------

SLOW = """\
bundle init -- sleep 100
load $bundle
continue
start
exec -d sleep 300
expect exec sleep 30 -> status == 0
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_removes_everything(replay, tmp_path, sig):
    sc = tmp_path / "slow.ocish"
    sc.write_text(SLOW)
    before_kids, before_mounts = children(), mount_count()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        fmt = "json" if sig == signal.SIGTERM else "tap"  # the JSON's status: the exit status
        proc = subprocess.Popen(replay.cmd(str(sc), "--format", fmt), stdout=out, stderr=err,
                                env=replay.env(), stdin=subprocess.DEVNULL)
        c = replay.ids[-1]
        deadline = time.monotonic() + 30
        while True:  # until `exec sleep 30` runs in the container's cgroup
            procs = [d for d in cgroup_dirs(c) if "/pids/" in d]
            pids = open(f"{procs[0]}/cgroup.procs").read().split() if procs else []
            cmdlines = [open(f"/proc/{p}/cmdline").read() for p in pids if os.path.exists(f"/proc/{p}")]
            if "sleep\x0030\x00" in cmdlines:
                break
            assert time.monotonic() < deadline and proc.poll() is None, "the exec never ran"
            time.sleep(0.05)
        assert len(pids) == 3  # the init, the detached exec, the foreground exec
        proc.send_signal(sig)
        assert proc.wait(30) == 128 + sig
        out.seek(0)
        err.seek(0)
        report, errors = out.read(), err.read()
    if fmt == "tap":
        assert report.splitlines()[-1] == f"Bail out! interrupted by {sig.name}"
    else:
        doc = json.loads(report)
        assert (doc["exit_status"], doc["interrupted"]) == (128 + sig, sig.name)
    assert f"interrupted by {sig.name}: everything it made is removed" in errors
    assert "Traceback" not in errors
    assert not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
                   for p in pids)
    assert children() <= before_kids and mount_count() == before_mounts
    replay.assert_clean()


# -- record: a session becomes a script that replays green --------------------------------------

def test_record_replays_to_the_same_stops_on_other_runs(session, make_bundle, tmp_path, replay):
    b = make_bundle(["sleep", "100"], mutate=lambda s: s["linux"].update(
        resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 32}}))
    s = session(b)
    for line in ["break mount /proc", "continue", "inspect ns", "stages", "next",
                 "inspect mounts", "inspect ids", "inspect cgroup", "inspect fds",
                 "inspect env", "inspect proc", "inspect rlimits", "inspect caps",
                 "tbreak caps", "continue", "inspect caps", "inspect seccomp", "continue",
                 "state", "start", "exec hostname", "exec sh -c 'echo hi; exit 4'",
                 "inspect all", "ps", "bogus-command", "break nope"]:
        s.cmd(line)
    plain, snap = tmp_path / "plain.ocish", tmp_path / "snap.ocish"
    assert "recorded 10 command(s) and 0 expectation(s)" in s.cmd(f"record {plain}")
    out = s.cmd(f"record --expect {snap}")
    assert re.search(r"recorded 10 command\(s\) and \d{3} expectation\(s\)", out), out
    s.quit()
    text = snap.read_text()
    assert f"load ${{bundle:-{b}}}" in text
    assert "expect continue -> reason == breakpoint, next == \"mounts /mounts/0\"" in text
    assert "expect ns.mnt != host" in text and "expect ns.user == host" in text
    assert "expect cgroup.memory.limit == 67108864" in text
    assert "expect cgroup.memory.usage > 0" in text and "expect proc.pid > 0" in text
    assert 'expect cgroup.membership matches "${id}"' in text
    assert "cgroup.membership." not in text and "cgroup.membership[" not in text
    assert 'expect mounts[/proc].propagation == private' in text
    # the host's cgroup hierarchies under the config's cgroup mount are this host's: not kept
    assert "mounts[/sys/fs/cgroup/" not in text and "mounts[/sys/fs/cgroup].fstype" not in text
    assert 'expect mounts[/sys/fs/cgroup].options matches "^ro(,|\\$)"' in text
    assert "expect caps.effective == [CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE]" in text
    assert "expect exec sh -c 'echo hi; exit 4' -> status == 4, stdout == hi" in text
    assert "expect exec hostname -> status == 0, stdout == ocish" in text
    assert "# not replayed, it failed (no stage 'nope': stages are cgroup" in text
    assert s.cid not in text and str(b) not in text.replace(f"${{bundle:-{b}}}", "")
    for _ in range(2):  # two more runs, other ids, pids, inodes: green both times
        p = replay(str(snap))
        assert p.returncode == 0, p.stdout
        assert "not ok" not in p.stdout and " 0 failed" in p.stdout
    p = replay(str(plain), "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["summary"]["tests"] == 0
    replay.assert_clean()


def test_debug_record_flag_writes_the_session_at_its_end(ocish, tmp_path, replay):
    out = tmp_path / "s.ocish"
    c = cid()
    p = subprocess.run(ocish_cmd() + ["debug", "--id", c, "--root", ocish.root, "--plain",
                                      "--record-expect", str(out)],
                       input="break pivot\ncontinue\ninspect ns\ncontinue\nstart\nstate\n",
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    assert "recorded 6 command(s)" in p.stderr
    text = out.read_text()
    assert text.splitlines()[2:4] == ["bundle init -- sh", "load $bundle"]  # the default bundle
    assert "expect state.status == running" in text and "expect state.id == ${id}" in text
    r = replay(str(out))
    assert r.returncode == 0, r.stdout
    replay.assert_clean()


def test_record_expect_of_a_stopped_container_replays(ocish, session, make_bundle, tmp_path,
                                                      replay):
    """A container that ran `true` and was waited for: its state's pid 0 is recorded as `== 0`,
    not `> 0`; `start` (the process may or may not still run when it returns: a race) as a plain
    command and `wait` with the exit status; after the process is gone its cgroup membership is
    empty. The same after `ocish attach` of the stopped container. Ten replays, all green."""
    b = make_bundle(["true"])
    s = session(b)
    for line in ("continue", "start", "wait", "state", "inspect cgroup", "inspect exit"):
        s.cmd(line)
    snap = tmp_path / "stopped.ocish"
    s.cmd(f"record --expect {snap}")
    s.quit()
    text = snap.read_text()
    assert "expect state.pid == 0" in text and "expect state.status == stopped" in text, text
    assert "\nstart\n" in text and "expect start" not in text, text
    assert 'expect wait -> how == "exit status 0"' in text, text
    assert "expect cgroup.membership.count == 0" in text, text
    stopped = cid()
    ocish("create", "-b", str(b), stopped, check=True)
    ocish("start", stopped, check=True)
    try:
        deadline = time.monotonic() + 60
        while json.loads(ocish("state", stopped, check=True).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, "`true` did not end within 60 s"
            time.sleep(0.1)
        a = session(None, stopped, command="attach")
        a.cmd("state")
        attached = tmp_path / "attached.ocish"
        a.cmd(f"record --expect {attached}")
        a.quit()
    finally:
        ocish("delete", "-f", stopped)
    assert "expect state.pid == 0" in attached.read_text()
    for path in [attached] + [snap] * 10:
        p = replay(str(path))
        assert p.returncode == 0, p.stdout
    replay.assert_clean()


def test_record_expect_leaves_the_callers_cgroup_out(session, make_bundle, tmp_path, replay):
    """`inspect cgroup` before stage cgroup has run shows the cgroups the container side
    inherited (the caller's): a fact of this host, not recorded; nor are the hierarchy keys."""
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("inspect cgroup")
    snap = tmp_path / "early.ocish"
    s.cmd(f"record --expect {snap}")
    s.quit()
    text = snap.read_text()
    assert "membership" not in text, text
    p = replay(str(snap))
    assert p.returncode == 0, p.stdout


def test_record_after_attach_replays(ocish, session, make_bundle, tmp_path, replay):
    """A session opened with `ocish attach ID` (and one that types `attach ID`) records a
    script that sets a new container up from the attached one's bundle to the status it had,
    with no literal id or path of this run; it replays green."""
    b = make_bundle(["sleep", "100"])
    created, running = cid(), cid()
    ocish("create", "-b", str(b), created, check=True)
    ocish("run", "-d", "-b", str(b), running, check=True)
    try:
        a = session(None, created, command="attach")
        for line in ("state", "start", "exec echo hi", "inspect ns"):
            a.cmd(line)
        first = tmp_path / "attach.ocish"
        assert "recorded 4 command(s)" in a.cmd(f"record --expect {first}")
        a.quit()
        text = first.read_text()
        assert text.splitlines()[2:5] == [
            f"# attached to container {created} (created): replayed as a new container from "
            "its bundle, set up to the same status", f"load ${{bundle:-{b}}}", "continue"], text
        assert "expect state.status == created" in text and "expect state.id == ${id}" in text
        assert "\nstart\n" in text and "expect start" not in text
        assert "expect exec echo hi -> status == 0, stdout == hi" in text
        assert created not in text.replace(f"container {created} (created)", "")
        # typed, in a shell: a running container is replayed up to `start`
        s = session(None, command="shell")
        s.cmd(f"attach {running}")
        s.cmd("pause")
        second = tmp_path / "typed.ocish"
        assert "recorded 4 command(s)" in s.cmd(f"record --expect {second}")
        s.quit()
        lines = second.read_text().splitlines()
        assert lines[3:7] == [f"load ${{bundle:-{b}}}", "continue", "start", "pause"], lines
        for path in (first, second):
            p = replay(str(path))
            assert p.returncode == 0, p.stdout
            assert "not ok" not in p.stdout and " 0 failed" in p.stdout, p.stdout
    finally:
        for c in (created, running):
            ocish("delete", "-f", c)
    replay.assert_clean()
