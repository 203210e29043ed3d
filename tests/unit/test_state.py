"""The state directory: ids, state.json reading and writing, crash records, removal order."""
from __future__ import annotations

import os

import pytest

from runtime import crashpoint, state
from runtime.errors import OcishError, SpecError


# --- container ids -----------------------------------------------------------------------------

@pytest.mark.parametrize("cid", ["a", "0", "abc-123", "A_b.c+d", "x" * 255, "f" * 64,
                                 "podman.pod-1", "a..b", "-rm", ".hidden", "_x", "+a", "...",
                                 "..a", "a.."])
def test_valid_ids(cid):
    state.validate_id(cid)


@pytest.mark.parametrize("cid,fragment", [
    ("", 'invalid container id "": must not be empty'),
    ("a/b", 'invalid container id "a/b": character "/" is not allowed'),
    (".", '"." and ".." are not allowed'),
    ("..", '"." and ".." are not allowed'),
    ("../etc", 'character "/" is not allowed'),
    ("a,b", 'character "," is not allowed'),  # runc 1.1.5's regexp let it through; 1.2 not
    ("a:b", 'character ":" is not allowed'),
    ("a b", 'character " " is not allowed'),
    ("a\0b", 'character "\\u0000" is not allowed'),
    ("caf\u00e9", 'character "\u00e9" is not allowed'),
    ("x" * 256, "must be at most 255 characters, got 256"),
    (5, "invalid container id: must be a string, got 5"),
])
def test_invalid_ids(cid, fragment):
    with pytest.raises(OcishError) as exc:
        state.validate_id(cid)
    assert fragment in str(exc.value)
    assert not isinstance(exc.value, SpecError)




# --- load: what a crash or a stranger can leave ------------------------------------------------

def record(root, cid="c1", **extra) -> dict:
    os.makedirs(os.path.join(root, cid), exist_ok=True)
    st = {"id": cid, "pid": 0, "start_time": None, "bundle": "/b", "rootfs": "/b/rootfs",
          "created": "2024-01-01T00:00:00.000000000Z", "owner": "", "cgroup": None, **extra}
    state.save(str(root), st)
    return st


def test_save_then_load_round_trip(tmp_path):
    st = record(tmp_path)
    assert state.load(str(tmp_path), "c1") == st
    assert os.listdir(tmp_path / "c1") == ["state.json"]  # the temporary file was renamed


def test_missing_folder_does_not_exist(tmp_path):
    with pytest.raises(state.NotExist):
        state.load(str(tmp_path), "c1")
    (tmp_path / "f").write_text("")
    with pytest.raises(state.NotExist):  # a file is not a container folder
        state.load(str(tmp_path), "f")


def test_folder_without_state_json_is_stopped_with_nothing_recorded(tmp_path):
    """A create killed before its first write, or a delete after its last unlink."""
    (tmp_path / "c1").mkdir()
    st = state.load(str(tmp_path), "c1")
    assert (st["id"], st["pid"], st["bundle"], st["cgroup"]) == ("c1", 0, "", None)
    assert state.status(str(tmp_path), st) == "stopped"
    assert st["created"].endswith("Z")


@pytest.mark.parametrize("text", ["{", "[1", "", "null", "[]", '{"id": "other"}',
                                  '{"id": "c1", "pid": "1"}', "\xff\xfe", "{" * 100000,
                                  '{"id": "c1", "pid": 1, "bundle": "", "rootfs": "", '
                                  '"created": "", "cgroup": {"paths": 1}}'])
def test_unreadable_state_json_is_one_clear_line(tmp_path, text):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "state.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(state.Unreadable) as exc:
        state.load(str(tmp_path), "c1")
    msg = str(exc.value)
    assert msg.startswith("container c1: state.json: ") and "\n" not in msg
    assert "delete -f c1" in msg


def test_state_json_that_is_not_a_file(tmp_path):
    (tmp_path / "c1" / "state.json").mkdir(parents=True)
    with pytest.raises(state.Unreadable, match="is a directory"):
        state.load(str(tmp_path), "c1")
    os.rmdir(tmp_path / "c1" / "state.json")
    os.mkfifo(tmp_path / "c1" / "state.json")  # must not block
    with pytest.raises(state.Unreadable):
        state.load(str(tmp_path), "c1")


def test_oversized_state_json_is_not_read_whole(tmp_path):
    record(tmp_path)
    with open(tmp_path / "c1" / "state.json", "ab") as f:
        f.write(b" " * state.MAX_STATE)
    with pytest.raises(state.Unreadable, match="not valid json|not a state.json"):
        state.load(str(tmp_path), "c1")


@pytest.mark.parametrize("cid", ["../etc", "/etc", "..", "a/b"])
def test_ids_never_reach_outside_the_root(tmp_path, cid):
    with pytest.raises(OcishError, match="invalid container id"):
        state.load(str(tmp_path), cid)


# --- status of a create in progress or interrupted ---------------------------------------------

def test_creating_while_the_creator_lives_stopped_once_it_is_dead(tmp_path):
    from runtime.linux import procfs
    me = {"pid": os.getpid(), "start_time": procfs.start_time(os.getpid())}
    st = record(tmp_path, creating=me)
    assert state.status(str(tmp_path), st) == "creating"
    st["creating"] = {"pid": os.getpid(), "start_time": me["start_time"] + 1}  # a reused pid
    assert state.status(str(tmp_path), st) == "stopped"
    st["creating"] = {"pid": 0, "start_time": None}
    assert state.status(str(tmp_path), st) == "stopped"


# --- removal: state.json last ------------------------------------------------------------------

def test_remove_dir_unlinks_state_json_last(tmp_path, monkeypatch):
    record(tmp_path)
    for name in ("config.json", "exec.fifo", ".state.json.tmp", "zzz"):
        (tmp_path / "c1" / name).write_text("")
    seen = []

    def at(point):
        seen.append((point, sorted(os.listdir(tmp_path / "c1"))))
    monkeypatch.setattr(crashpoint, "reached", at)
    state.remove_dir(str(tmp_path / "c1"))
    assert seen == [("delete:files", ["state.json"]), ("delete:state", [])]
    assert not (tmp_path / "c1").exists()
    state.remove_dir(str(tmp_path / "c1"))  # twice is fine


def test_list_ids_lists_every_container_folder(tmp_path):
    record(tmp_path, "b")
    (tmp_path / "a").mkdir()                  # no state.json: listed
    (tmp_path / ".hidden").mkdir()            # an id (runc's): listed
    (tmp_path / "file").write_text("")        # not a folder
    (tmp_path / "bad id").mkdir()             # not an id
    (tmp_path / "a,b").mkdir()                # not an id
    assert state.list_ids(str(tmp_path)) == [".hidden", "a", "b"]
    assert state.list_ids(str(tmp_path / "nope")) == []


def test_create_journal_records_the_pid_only_without_a_cgroup(tmp_path):
    """Setup.journal: the cgroup plan always; the init's pid only when no cgroup can find it
    (rootless), saving a rewrite of state.json on the common path."""
    from types import SimpleNamespace

    from runtime.lifecycle import Setup

    class Plan:
        def planned_state(self):
            return {"version": 1, "root": "/r", "paths": {"memory": "/r/m/c1"}, "created": []}

    st = record(tmp_path, creating={"pid": 0, "start_time": None})
    setup = SimpleNamespace(root=str(tmp_path), st=st,
                            ctx=SimpleNamespace(pid=os.getpid(), cgroup=None))
    Setup.journal(setup, "pid")  # no cgroup: the pid is what delete will kill
    assert state.load(str(tmp_path), "c1")["pid"] == os.getpid()
    setup.ctx.pid, setup.ctx.cgroup = 1, Plan()
    Setup.journal(setup, "cgroup")
    assert state.load(str(tmp_path), "c1")["cgroup"]["paths"] == {"memory": "/r/m/c1"}
    setup.ctx.pid = 2
    Setup.journal(setup, "pid")  # the cgroup holds it: no rewrite
    assert state.load(str(tmp_path), "c1")["pid"] == 1
