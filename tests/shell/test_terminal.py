"""The real terminal path, driven through tmux: prompt_toolkit completion, the toolbar (the
container's death too), Ctrl-C that never kills the shell, Ctrl-D and quit that ask before
tearing a created container down, an empty line that repeats the last command, help wrapped
to the terminal's width, the history file."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.conftest import REPO, cid, needs_root
from tests.shell.conftest import _sweep_cgroups, cgroup_dirs, shrink_memory

pytestmark = [needs_root, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    def __init__(self, command: str, env: dict[str, str], width: int = 200) -> None:
        self.sock = f"ocish-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self._run("new-session", "-d", "-s", "t", "-x", str(width), "-y", "50",
                  # COLUMNS/LINES, when the pane's shell exports them, would override the
                  # pane's real size for rich and shutil
                  f"env -u COLUMNS -u LINES {exports} {command}; echo OCISH-EXITED $?; sleep 60")

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              timeout=10).stdout

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "t")

    def history(self) -> str:
        """The screen with what scrolled off its top, lines the terminal wrapped joined (-J):
        a line longer than the pane shows as one long line."""
        return self._run("capture-pane", "-p", "-J", "-S", "-1000", "-t", "t")

    def wait_for(self, text: str, timeout: float = 15) -> str:
        return self.wait_any(text, timeout=timeout)

    def wait_any(self, *texts: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while not any(x in (screen := self.screen()) for x in texts):
            if time.monotonic() > deadline:
                raise AssertionError(f"none of {texts} on screen:\n{screen}")
            time.sleep(0.1)
        return screen

    def wait_prompts(self, n: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.screen().count("(ocish)") < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {n} prompts:\n{self.screen()}")
            time.sleep(0.1)

    def kill(self) -> None:
        self._run("kill-server")


def test_terminal_session(ocish, make_bundle, tmp_path):
    b = make_bundle(["sleep", "100"])
    c = cid()
    home = tmp_path / "home"
    env = {"PYTHONPATH": str(REPO), "HOME": str(home), "TERM": "xterm-256color"}
    t = Tmux(f"python3 -m ocish debug {b} --root {ocish.root} --id {c}", env)
    try:
        screen = t.wait_for(f"id {c} | status setting up | stage cgroup")  # the toolbar
        assert "(ocish)" in screen
        t.keys("sta", "Tab")
        screen = t.wait_for("stages")
        assert "start" in screen and "state" in screen  # the completion menu
        t.keys("C-c")  # at the prompt: a fresh prompt, not an exit
        t.wait_prompts(2)
        t.keys("break mount /pr", "Tab")
        t.wait_for("break mount /proc")
        t.keys("Enter")
        t.wait_for("breakpoint 1 before mounts /mounts/0")
        t.keys("c", "Enter")
        t.keys("C-c")  # during `continue` (it stops after the current step) or at the prompt
        screen = t.wait_any("interrupted", "breakpoint 1, next")
        if "interrupted" in screen:
            t.keys("c", "Enter")
        t.wait_for("stage mounts /mounts/0")  # the toolbar follows the engine
        t.keys("inspect m", "Tab")
        t.wait_for("inspect mounts")
        t.keys("Enter")
        t.wait_for("mounts under the rootfs")
        t.keys("stages", "Enter")  # rendered by rich: a tree with breakpoint marks
        t.wait_for("● b1")
        assert "setup pipeline" in t.screen()
        assert "OCISH-EXITED" not in t.screen()
        t.keys("C-d")
        t.wait_for("OCISH-EXITED 0")
    finally:
        t.kill()
        _sweep_cgroups(c)
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)
    history = (home / ".local/state/ocish/history").read_text()
    assert "+break mount /proc" in history and "+inspect mounts" in history


def _session(ocish, bundle, c: str, home, width: int = 200) -> Tmux:
    env = {"PYTHONPATH": str(REPO), "HOME": str(home), "TERM": "xterm-256color"}
    return Tmux(f"python3 -m ocish debug {bundle} --root {ocish.root} --id {c}", env, width)


def _cleanup(ocish, t: Tmux, c: str) -> None:
    t.kill()
    _sweep_cgroups(c)
    ocish("delete", "-f", c)


def test_empty_line_repeats_and_help_wraps_to_the_terminal(ocish, make_bundle, tmp_path):
    c = cid()
    t = _session(ocish, make_bundle(["sleep", "100"]), c, tmp_path / "home", width=60)
    try:
        t.wait_for("stage cgroup")
        t.keys("step", "Enter")
        t.wait_for("stage unshare")
        t.keys("Enter")  # gdb: an empty line repeats `step`
        t.wait_for("stage idmap")
        screen = t.wait_for("ran unshare")
        assert screen.count("ran ") == 2
        t.keys("clear", "Enter")  # not a command: a clean screen for the help below
        t.keys("C-l")
        t.keys("help", "Enter")
        t.wait_for("shows examples")  # the end of the help text
        text = t.history().split("(ocish) help\n")[1]
        assert all(len(ln.rstrip()) <= 60 for ln in text.splitlines())
        # wrapped by the shell into its columns, not by the terminal (or rich) at random: every
        # line of the table starts indented, usage or summary column
        table = text.split("\n\n")[0].splitlines()
        assert len(table) > 40 and all(ln.startswith("  ") for ln in table), text
        assert "(n) run the rest of" in text and "examples." in text
        t.keys("Enter")  # help is not repeated: a fresh prompt, the same stop
        time.sleep(0.5)
        assert "stage idmap" in t.screen()
    finally:
        _cleanup(ocish, t, c)


def test_quit_and_ctrl_d_ask_first_with_a_created_container(ocish, make_bundle, tmp_path):
    c = cid()
    t = _session(ocish, make_bundle(["sleep", "100"]), c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup")
        t.keys("continue", "Enter")
        t.wait_for("status created")
        t.keys("C-d")
        t.wait_for("Quit anyway? (y or n)")
        assert f"container {c} (created, pid " in t.screen() and "will be deleted" in t.screen()
        t.keys("n", "Enter")
        t.wait_for("not confirmed: the session goes on")
        assert ocish.state(c)["status"] == "created"
        t.keys("quit", "Enter")
        t.wait_any("(y or n) n\n", timeout=5)
        t.keys("y", "Enter")
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)


def test_the_toolbar_shows_a_death(ocish, make_bundle, tmp_path):
    c = cid()
    t = _session(ocish, make_bundle(["sleep", "100"]), c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup")
        t.keys("s", "Enter")
        t.wait_for("ran cgroup")
        shrink_memory(c)  # OOM-killed during setup from here on
        t.keys("c", "Enter")
        screen = t.wait_for("status died: killed by SIGKILL")
        assert "the container process" in screen and "died: killed by SIGKILL" in screen
        t.keys("quit", "Enter")  # nothing alive: no question
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)


def test_a_death_while_idle_at_the_prompt_is_told_at_once(ocish, make_bundle, tmp_path):
    """The container prints and exits while the user sits at the prompt: the news comes at
    once, above a prompt drawn anew, with no Enter; one toolbar, the new status in it (not a
    stale `running` one left above by the container's output)."""
    b = make_bundle(["sh", "-c", "while [ ! -e /go ]; do sleep 0.1; done; echo hello-from-c1"])
    c = cid()
    t = _session(ocish, b, c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup", timeout=60)
        t.keys("continue", "Enter")
        t.wait_for("setup complete", timeout=60)
        t.keys("start", "Enter")
        t.wait_for(f"started container {c}", timeout=60)
        t.wait_for("status running", timeout=60)  # idle at the prompt, the process waits
        (b / "rootfs" / "go").write_text("")      # now it prints and exits: no key pressed
        screen = t.wait_for("exited after start: exit status 0", timeout=60)
        screen = t.wait_for("status stopped: exit status 0", timeout=30)
        lines = [x for x in screen.splitlines() if x.strip()]
        assert screen.count(f" ocish | id {c} |") == 1, screen
        assert lines[-1].startswith(f" ocish | id {c} | status stopped: exit status 0"), screen
        assert lines[-2] == "(ocish)", screen  # a fresh prompt, below the news
        assert "exited after start: exit status 0" in lines[-3], screen
        assert "hello-from-c1" in screen
        t.keys("quit", "Enter")  # nothing alive: no question
        t.wait_for("OCISH-EXITED 0", timeout=30)
    finally:
        _cleanup(ocish, t, c)


def test_record_expect_of_an_exec_on_a_terminal(ocish, make_bundle, tmp_path):
    """On a terminal exec's output goes to it, uncaptured: record --expect keeps the status
    and says, in a comment, that the output was not kept (and how to check it)."""
    c = cid()
    script = tmp_path / "s.ocish"
    t = _session(ocish, make_bundle(["sleep", "100"]), c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup")
        t.keys("continue", "Enter")
        t.wait_for("status created")
        t.keys("start", "Enter")
        t.wait_for("status running")
        t.keys("exec hostname", "Enter")
        t.wait_for("exit status 0")
        t.keys(f"record --expect {script}", "Enter")
        t.wait_for("recorded ")
        lines = script.read_text().splitlines()
        at = lines.index("expect exec hostname -> status == 0")
        assert lines[at - 1] == ("# its output went to the terminal, not kept: add "
                                 "`, stdout == ...` to check it (piped, it is kept)"), lines
    finally:
        _cleanup(ocish, t, c)


def test_the_toolbar_says_where_catch_exec_holds_the_process(ocish, make_bundle, tmp_path):
    c = cid()
    t = _session(ocish, make_bundle(["sleep", "100"]), c, tmp_path / "home")
    try:
        t.wait_for(f"id {c} | status setting up")
        for line in ("catch exec", "continue", "start"):
            t.keys(line, "Enter")
        screen = t.wait_for(f"id {c} | stopped after execve of /bin/busybox (pid ")
        pid = int(screen.split("stopped after execve of /bin/busybox (pid ")[-1].split(")")[0])
        with open(f"/proc/{pid}/status") as f:
            assert "State:\tt (tracing stop)" in f.read()
        t.keys("continue", "Enter")
        t.wait_for(f"id {c} | status running")
        with open(f"/proc/{pid}/status") as f:
            assert "TracerPid:\t0" in f.read()
        t.keys("quit", "Enter")
        t.wait_for("Quit anyway?")
        t.keys("y", "Enter")
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)
