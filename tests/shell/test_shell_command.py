"""`shell COMMAND-LINE` (gdb's `shell`, alias `!`): a host command line through /bin/sh, with
$variables expanded, its output the data a script checks; it runs in the host's namespaces,
where `exec` runs in the container's."""
from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root


def _replay(tmp_path, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / "s.ocish"
    script.write_text(text)
    return subprocess.run(ocish_cmd() + ["replay", str(script), "--root", str(tmp_path / "root"),
                                         "--id", cid()],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_shell_runs_on_the_host_and_exec_in_the_container(tmp_path) -> None:
    host_uts = os.readlink("/proc/self/ns/uts")
    res = _replay(tmp_path, f"""
bundle init -- sleep 100
load $bundle
continue
start
expect shell readlink /proc/self/ns/uts -> status == 0, stdout == "{host_uts}"
expect !readlink /proc/$pid/ns/uts -> stdout != "{host_uts}"
expect exec hostname -> stdout == ocish
expect shell echo "a  b" | wc -w -> stdout == 2
expect shell echo out; echo err >&2; exit 3 -> status == 3, stdout == out, stderr == err
expect shell kill -TERM $$ -> status == 143
""")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "# 6 passed, 0 failed" in res.stdout


def test_a_failing_expectation_on_shell_output_fails_the_script(tmp_path) -> None:
    res = _replay(tmp_path, "expect shell echo yes -> stdout == no\n")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "not ok 1" in res.stdout


def test_shell_without_a_command_line_is_refused(tmp_path) -> None:
    res = subprocess.run(ocish_cmd() + ["shell", "--plain"], input="shell\nshell   # c\n",
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.stderr.count("usage: shell COMMAND-LINE") == 2, res.stderr
    assert res.returncode == 1


def test_a_background_process_keeping_stdout_does_not_hold_the_session(tmp_path) -> None:
    # a detached container (`ocish run -d`, `runc run -d`) keeps the stdout it was given
    t0 = time.monotonic()
    res = _replay(tmp_path, "expect shell echo now; sleep 29.75 & -> status == 0, stdout == now\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert time.monotonic() - t0 < 20
    subprocess.run(["pkill", "-f", "^sleep 29.75$"])


def _left(root) -> list[str]:
    return os.listdir(root) if os.path.isdir(root) else []


def test_a_container_a_failed_script_made_with_shell_is_removed(tmp_path) -> None:
    """A script that made a second container (`shell ocish --root $root create ...`) and failed
    before deleting it: the replay removes it with the session's own, process and cgroups."""
    from tests.shell.conftest import cgroup_dirs
    script = tmp_path / "s.ocish"
    script.write_text("bundle init -- sleep 100\n"
                      "expect shell ocish --root $root create -b $bundle $id-other "
                      "</dev/null >/dev/null 2>&1 -> status == 0\n"
                      "expect shell ocish --root $root state $id-other -> stdout contains created\n"
                      "expect status == running\n")  # fails: nothing loaded
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    (wrapper / "ocish").write_text(f'#!/bin/sh\nexec {ocish_cmd()[0]} -m ocish "$@"\n')
    (wrapper / "ocish").chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{wrapper}:{os.environ['PATH']}")
    for root in (None, tmp_path / "root"):
        c = cid()
        res = subprocess.run(ocish_cmd() + ["replay", str(script), "--id", c] +
                             (["--root", str(root)] if root else []),
                             capture_output=True, text=True, timeout=120, env=env,
                             stdin=subprocess.DEVNULL)
        assert res.returncode == 1 and "ok 2 " in res.stdout, res.stdout + res.stderr
        assert not cgroup_dirs(f"{c}-other"), res.stderr
        if root:
            assert _left(root) == []
        assert subprocess.run(["pgrep", "-f", f"ocish init.*{c}"]).returncode == 1
