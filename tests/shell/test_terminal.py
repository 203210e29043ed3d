"""The real terminal path, driven through tmux: prompt_toolkit completion, the toolbar, Ctrl-C
that never kills the shell, Ctrl-D that quits with a clean teardown, the history file."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.conftest import REPO, cid, needs_root
from tests.shell.conftest import _sweep_cgroups, cgroup_dirs

pytestmark = [needs_root, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.sock = f"ocish-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self._run("new-session", "-d", "-s", "t", "-x", "200", "-y", "50",
                  f"env {exports} {command}; echo OCISH-EXITED $?; sleep 60")

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              timeout=10).stdout

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "t")

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
