"""`ocish diagnose` on real broken bundles: the right stage, cause and fix, exit codes, timing, and
nothing left behind (no temp --root, state dir, cgroup, mount or process) after each diagnosis.

Every bundle of tests/diagnose/corpus.py is built from the busybox rootfs and diagnosed by the
command line, as a user runs it; the JSON report is checked. Times per diagnosis are collected
and printed at the end of the module (run with -s to see them).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, children, mount_count, needs_root, reap_orphans
from tests.diagnose.corpus import CASES, HEALTHY, build

pytestmark = needs_root
WINDOW = "0.5"
MAX_SECONDS = 10.0
TIMES: dict[str, float] = {}


def _our_cgroups(extra: str = "") -> list[str]:
    """The dry run's cgroups: /ocish/diagnose-* by default, or the bundle's cgroupsPath (a
    podman-shaped bundle's /libpod_parent/libpod-<random>)."""
    return glob.glob("/sys/fs/cgroup/*/ocish/diagnose-*") + \
        (glob.glob(f"/sys/fs/cgroup/*{extra}*") if extra else [])


def _lasting(cgroups: list[str], seconds: float = 10.0) -> list[str]:
    """The cgroups of `cgroups` still there after `seconds`: another diagnose running at the
    same time (a second test run on this machine) has its own diagnose-* for a second or two;
    a leak stays."""
    deadline = time.monotonic() + seconds
    while cgroups and time.monotonic() < deadline:
        time.sleep(0.2)
        cgroups = [c for c in cgroups if os.path.exists(c)]
    return cgroups


def _cgroups_path(args: tuple) -> str:
    for a in args:
        config = Path(a) / "config.json"
        if a.startswith("/") and config.is_file():
            try:
                return json.loads(config.read_text()).get("linux", {}).get("cgroupsPath", "")
            except ValueError:
                return ""
    return ""


class Run:
    def __init__(self, p: subprocess.CompletedProcess, seconds: float) -> None:
        self.rc, self.out, self.err, self.seconds = p.returncode, p.stdout, p.stderr, seconds

    @property
    def report(self) -> dict:
        return json.loads(self.out)


def diagnose(*args: str, tmpdir: Path, timeout: float = 120, **kw) -> Run:
    """`ocish diagnose ARGS` with its own TMPDIR (where its throwaway --root goes), checked to be
    empty afterwards together with the cgroups, mounts and processes it could have left."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir))
    env.pop("NO_COLOR", None)
    kids, mounts = children(), mount_count()
    cgroups_path = _cgroups_path(args)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ocish", "diagnose", *args], capture_output=True,
                       text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    seconds = time.monotonic() - t0
    assert "Traceback" not in p.stderr, p.stderr
    left = list(tmpdir.iterdir())
    assert left == [], f"left behind in TMPDIR: {left}"
    assert _lasting(_our_cgroups(cgroups_path)) == []
    assert mount_count() == mounts
    reap_orphans()
    assert children() <= kids, "a process was left behind"
    return Run(p, seconds)



@pytest.fixture(scope="module", autouse=True)
def timing_summary():
    yield
    if TIMES:
        values = sorted(TIMES.values())
        print(f"\ndiagnose: {len(values)} bundles, median {statistics.median(values):.2f}s, "
              f"max {values[-1]:.2f}s ({max(TIMES, key=TIMES.get)})")


def _check_fix(fix: dict, want: str) -> None:
    kind, _, what = want.partition(":")
    assert fix is not None, "no fix"
    if kind == "patch":
        assert any(op["path"].startswith(what) for op in fix["patch"]), fix
    elif kind == "command":
        assert what in fix["command"], fix
    else:
        assert what in fix["text"], fix


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_bundle(case, rootfs_template, bundle_dir, tmpdir_empty):
    bundle = build(case, bundle_dir(case.open_dir), rootfs_template)
    run = diagnose(str(bundle), "--format", "json", "--timeout", WINDOW, tmpdir=tmpdir_empty)
    TIMES[case.name] = run.seconds
    assert run.rc == 1, (run.out, run.err)
    report = run.report
    assert report["healthy"] is False
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors, report
    first = errors[0]
    summary = json.dumps(first, indent=1)
    assert first["code"] == case.code, summary
    if case.stage:
        assert first["stage"] == case.stage, summary
    assert first["pointer"].startswith(case.pointer), summary
    text = " ".join([first["cause"], first["title"], first["errno_name"]] + first["evidence"])
    assert case.cause in text, summary
    _check_fix(first["fix"], case.fix)
    assert run.seconds < MAX_SECONDS


@pytest.mark.parametrize("case", HEALTHY, ids=[c.name for c in HEALTHY])
def test_healthy_bundle(case, rootfs_template, bundle_dir, tmpdir_empty):
    bundle = build(case, bundle_dir(case.open_dir), rootfs_template)
    run = diagnose(str(bundle), "--timeout", WINDOW, tmpdir=tmpdir_empty)
    TIMES[case.name] = run.seconds
    assert run.rc == 0, run.out + run.err
    verdict = [ln for ln in run.out.splitlines() if ln.strip().startswith("verdict")]
    assert verdict and "healthy: started" in verdict[0], run.out
    assert "\x1b[" not in run.out  # plain text when stdout is not a terminal
    js = diagnose(str(bundle), "--format", "json", "--timeout", WINDOW, tmpdir=tmpdir_empty)
    report = js.report
    assert js.rc == 0 and report["healthy"] is True
    assert [f for f in report["findings"] if f["severity"] == "error"] == []
    warnings = [f for f in report["findings"] if f["severity"] == "warning"]
    if case.code:  # started, but the cgroup counted trouble: a warning, not a failure
        [w] = warnings
        assert (w["code"], w["stage"], w["pointer"]) == (case.code, case.stage, case.pointer)
        assert case.cause in w["cause"]
        _check_fix(w["fix"], case.fix)
    else:
        assert warnings == []
    if "podman" in case.name:  # its createRuntime hook ran, with the state on stdin
        state = json.loads((bundle.parent / "host" / "hook-ran").read_text())
        assert state["status"] == "creating" and state["id"].startswith("diagnose-")
        assert state["annotations"]["io.container.manager"] == "libpod"


def test_no_bundle_is_exit_2(tmp_path, tmpdir_empty):
    run = diagnose(str(tmp_path / "nothing-here"), tmpdir=tmpdir_empty)
    assert run.rc == 2 and run.out == ""
    assert run.err.strip().endswith("no such file or directory"), run.err
    assert len(run.err.splitlines()) == 1


def test_no_bundle_with_json_prints_a_json_error(tmp_path, tmpdir_empty):
    """A tool that reads --format json's stdout gets a document whatever happened."""
    missing = tmp_path / "nothing-here"
    for args in (["--format", "json", str(missing)], ["--format=json", str(missing)],
                 ["--format", "json", "--timeout", "-1", str(missing)]):
        run = diagnose(*args, tmpdir=tmpdir_empty)
        assert run.rc == 2 and len(run.err.splitlines()) == 1, run.err
        doc = json.loads(run.out)
        assert doc["exit_status"] == 2 and run.err == f"ocish: diagnose: {doc['error']}\n"


def test_unreadable_config_is_exit_2(tmp_path, tmpdir_empty):
    (tmp_path / "b" / "config.json").mkdir(parents=True)  # a directory: read(2) says EISDIR
    run = diagnose(str(tmp_path / "b"), tmpdir=tmpdir_empty)
    assert run.rc == 2 and len(run.err.splitlines()) == 1
    assert run.err.endswith("config.json: not a regular file (a directory)\n"), run.err


def test_config_fifo_is_exit_2(tmp_path, tmpdir_empty):
    """A FIFO as config.json is refused as lint refuses it, not read (which waits forever for
    a writer)."""
    os.mkfifo(tmp_path / "config.json")
    for fmt in ("text", "json"):
        run = diagnose(str(tmp_path), "--format", fmt, tmpdir=tmpdir_empty, timeout=20)
        assert run.rc == 2, run.err
        assert run.err == (f"ocish: diagnose: {tmp_path}/config.json: not a regular file "
                           "(a fifo)\n")
        if fmt == "json":
            assert json.loads(run.out) == {"error": run.err[len("ocish: diagnose: "):-1],
                                           "exit_status": 2}


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "-inf", "1e300", "3601"])
def test_bad_arguments_are_exit_2(rootfs_template, tmpdir_empty, timeout):
    run = diagnose(str(rootfs_template), f"--timeout={timeout}", tmpdir=tmpdir_empty)
    assert run.rc == 2 and "--timeout must be a number of seconds" in run.err, run.err
    assert len(run.err.splitlines()) == 1 and "internal error" not in run.err


def test_text_report_names_stage_cause_and_fix(rootfs_template, bundle_dir, tmpdir_empty):
    case = next(c for c in CASES if c.code == "entrypoint-interpreter")
    bundle = build(case, bundle_dir(False), rootfs_template)
    run = diagnose(str(bundle), "--timeout", WINDOW, tmpdir=tmpdir_empty)
    assert run.rc == 1
    out = run.out
    for want in ("verdict   1 problem found", "confirmed by the dry run",
                 "stage     exec; operation execve; errno ENOENT", "config    /process/args/0",
                 "cause", "#!/usr/bin/python3", "fix", "exit status 1 after"):
        assert want in out, out


def test_against_runc_side_by_side(rootfs_template, bundle_dir, tmpdir_empty):
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    case = next(c for c in CASES if c.code == "entrypoint-interpreter")
    bundle = build(case, bundle_dir(False), rootfs_template)
    run = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc", "--format", "json",
                   tmpdir=tmpdir_empty)
    runc = run.report["against"]
    assert runc["runtime"] == "runc" and runc["version"].startswith("runc version")
    # runc 1.1.5's start succeeds; runc init's execve then fails and says so on the container's
    # stderr (plain text, not a log line): as ocish, whose start returns before its execve
    assert "exec /app.py: no such file or directory" in runc["stderr"], runc
    assert runc["outcome"].startswith("started; exit status 1") and runc["error"] == "", runc
    text = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc",
                    tmpdir=tmpdir_empty).out
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("against runc (runc version"))
    assert lines[at + 1].split() == ["ocish", "runc"], text
    outcome = lines[at + 2]
    assert outcome.split()[0] == "outcome" and "exit status 1" in outcome, text
    exit_row = next(ln for ln in lines[at:] if ln.split()[:1] == ["exit"])
    assert exit_row.split() == ["exit", "1", "1"], text  # runc 1.1.5 and ocish alike
    assert not glob.glob("/sys/fs/cgroup/*/diagnose-runc-*")


def test_against_runc_keeps_the_streams_apart(rootfs_template, bundle_dir, tmpdir_empty):
    """A process that writes to both streams and ends at once: runc's outcome says it ran (it
    ends before a `runc state` poll sees it running), stdout and stderr are not mixed, and the
    side-by-side rows say the same."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    case = next(c for c in HEALTHY if c.name == "healthy: runs to completion")
    bundle = build(case, bundle_dir(False), rootfs_template)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"]
    (bundle / "config.json").write_text(json.dumps(spec))
    run = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc", "--format", "json",
                   "--no-trace", tmpdir=tmpdir_empty)
    runc = run.report["against"]
    assert runc["ran"] is True and runc["exit_status"] == 3, runc
    assert runc["outcome"].startswith("started; exit status 3"), runc
    assert (runc["stdout"], runc["stderr"], runc["error"]) == (["to-stdout"], ["to-stderr"], "")
    ours = run.report["dry_run"]
    assert (ours["stdout"], ours["stderr"]) == (["to-stdout"], ["to-stderr"]), ours
    text = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc", "--no-trace",
                    tmpdir=tmpdir_empty).out
    rows = text[text.index("against runc"):].splitlines()
    assert next(r for r in rows if r.split()[:1] == ["stdout"]).split() == \
        ["stdout", "to-stdout", "to-stdout"], text
    assert next(r for r in rows if r.split()[:1] == ["stderr"]).split() == \
        ["stderr", "to-stderr", "to-stderr"], text
    assert "started; exit status 3" in next(r for r in rows if r.split()[:1] == ["outcome"])
    assert "failed before" not in text[text.index("against runc"):], text


def test_against_runc_setup_failure(rootfs_template, bundle_dir, tmpdir_empty):
    """runc refuses a missing entrypoint before its process runs: its logged error is the
    error, not a line of the container's stderr."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    case = next(c for c in CASES if c.code == "entrypoint-missing")
    bundle = build(case, bundle_dir(False), rootfs_template)
    runc = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc", "--format", "json",
                    "--no-trace", tmpdir=tmpdir_empty).report["against"]
    assert runc["ran"] is False and runc["exit_status"] == 1, runc
    assert runc["outcome"] == "failed before its process ran: exit status 1", runc
    assert runc["error"].startswith("runc run failed: unable to start container process: "
                                    "exec: "), runc
    assert runc["stderr"] == [] and runc["stdout"] == [], runc


def test_against_runc_with_a_terminal(rootfs_template, bundle_dir, tmpdir_empty):
    """process.terminal: runc's foreground run gets a pty of ours; both keep running."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    case = next(c for c in HEALTHY if c.name == "healthy: keeps running")
    bundle = build(case, bundle_dir(False), rootfs_template)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(spec))
    run = diagnose(str(bundle), "--timeout", WINDOW, "--against", "runc", "--format", "json",
                   tmpdir=tmpdir_empty)
    report = run.report
    assert run.rc == 0 and report["healthy"], run.out
    assert report["against"]["outcome"] == f"started; still running after {WINDOW}s", report
    assert report["against"]["ran"] is True and report["against"]["stderr"] == [], report
    assert [f["code"] for f in report["findings"]] == ["terminal"]


@pytest.fixture
def hanging_hook(rootfs_template, bundle_dir) -> tuple[Path, Path]:
    """(a bundle whose prestart hook never ends and has no timeout, the hook's path)."""
    case = next(c for c in CASES if c.code == "hook-timeout")
    where = bundle_dir(False)
    bundle = build(case, where, rootfs_template)
    spec = json.loads((bundle / "config.json").read_text())
    del spec["hooks"]["prestart"][0]["timeout"]
    (bundle / "config.json").write_text(json.dumps(spec))
    hook = where / "host" / "prestart-hook"
    hook.write_text("#!/bin/sh\nwhile :; do sleep 0.1; done\n")  # its cmdline names it
    return bundle, hook


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_during_the_dry_run_leaves_nothing(signum, hanging_hook, tmpdir_empty):
    """The signal comes while setup waits for a hook that hangs."""
    bundle, hook = hanging_hook
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir_empty))
    kids, mounts = children(), mount_count()
    p = subprocess.Popen([sys.executable, "-m", "ocish", "diagnose", str(bundle)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _running(str(hook)):
        time.sleep(0.05)
    assert _running(str(hook)), "the hook never started"
    p.send_signal(signum)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signum, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmpdir_empty.iterdir()) == [] and _lasting(_our_cgroups()) == []
    assert mount_count() == mounts
    reap_orphans()
    assert children() <= kids and not _running(str(hook))


def _running(cmdline_part: str) -> bool:
    for d in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(d, "rb") as f:
                if cmdline_part.encode() in f.read():
                    return True
        except OSError:
            continue
    return False


def test_setup_deadline_names_the_hanging_hook(hanging_hook, monkeypatch):
    """The dry run gives up at its deadline (shortened here), names the stage and the hook, and
    kills the hook."""
    import ocish.diagnose as diagnose_mod
    bundle, hook = hanging_hook
    monkeypatch.setattr(diagnose_mod, "SETUP_DEADLINE", 1.0)
    kids = children()
    report = diagnose_mod.diagnose(str(bundle), 0.5, trace=False)
    [f] = report.errors
    assert (f.code, f.stage, f.pointer) == ("setup-timeout", "hooks", "/hooks/prestart")
    assert "without a timeout" in f.cause
    assert f.fix.patch == [{"op": "add", "path": "/hooks/prestart/0/timeout", "value": 30}]
    reap_orphans()
    assert children() <= kids and not _running(str(hook))
