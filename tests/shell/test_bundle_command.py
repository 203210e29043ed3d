"""The session's `bundle init --force` (a page of the tutorials done twice) and what `bundle
set` notes: a member runtime-spec does not define (the runtime ignores it: a typo), and that a
loaded container was set up from the config as it was until `restart`."""
from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO, needs_root, ocish_cmd

pytestmark = needs_root


def _session(tmp_path, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(ocish_cmd() + ["shell", "--plain", "--root", str(tmp_path / "root")],
                          input=text, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_init_force_replaces_a_bundle_of_an_earlier_session(tmp_path) -> None:
    d = tmp_path / "b"
    first = _session(tmp_path, f"bundle init {d} -- sleep 1\n")
    assert first.returncode == 0, first.stderr
    again = _session(tmp_path, f"bundle init {d} -- sleep 2\n")
    assert again.returncode == 1 and "is not empty (use --force" in again.stderr
    forced = _session(tmp_path, f"bundle init --force {d} -- sleep 3\nbundle set /hostname x\n")
    assert forced.returncode == 0, forced.stderr
    config = json.loads((d / "config.json").read_text())
    assert config["process"]["args"] == ["sleep", "3"] and config["hostname"] == "x"


def test_init_force_refuses_the_loaded_containers_bundle(tmp_path) -> None:
    d = tmp_path / "b"
    res = _session(tmp_path, f"bundle init {d} -- sleep 9\nload $bundle\n"
                             f"bundle init --force {d} -- sleep 1\n")
    assert res.returncode == 1
    assert f"bundle init --force: {d} is the bundle of the loaded container" in res.stderr
    assert json.loads((d / "config.json").read_text())["process"]["args"] == ["sleep", "9"]


def test_set_notes_an_unknown_member_and_the_need_to_restart(tmp_path) -> None:
    res = _session(tmp_path, "bundle init -- sleep 9\n"
                             "bundle set /linux/namespace/- '{\"type\": \"user\"}'\n"
                             "bundle set /hostname web\nload $bundle\nbundle set /hostname w2\n")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    typo = lines.index(next(x for x in lines if x.endswith("/linux/namespace/- = {type: user}")))
    assert lines[typo + 1] == ("note: /linux/namespace: unknown member 'namespace': ignored; "
                               "did you mean 'namespaces'?")
    assert not lines[typo + 2].startswith("note:")  # a known member: nothing to note
    assert lines[-1] == ("note: the loaded container was set up from config.json as it was: "
                         "`restart` reads it again")


def test_set_with_an_unquoted_json_value_says_to_quote_it(tmp_path) -> None:
    res = _session(tmp_path, 'bundle init -- true\nbundle set /linux/namespaces/- {"type": "user"}\n')
    assert res.returncode == 1
    assert ("error: bundle set: the value is 2 words ({type: user}): quote it as one, JSON in "
            "single quotes: bundle set /linux/namespaces/- '{\"type\": \"user\"}'") in res.stderr
