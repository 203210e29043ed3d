"""What lives under --root: every state.json create writes is one the others read (however big
its config), an unusable or lost state.json of a live container is recovered by `delete -f`
(processes and cgroups, found by the config copy's cgroupsPath or the default path), a cgroup
that still holds processes is never joined, and folders that ocish did not make (a user's data,
runc's containers, /proc) are neither listed nor touched."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import cid, needs_root, reap_orphans, run_ocish
from tests.integration.test_malformed import one_line

pytestmark = needs_root

RUNC = shutil.which("runc")


def _leaves(c: str, path: str | None = None) -> list[str]:
    from runtime import cgroups
    return sorted(set(cgroups.open_manager(path, c).paths().values()))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        reap_orphans()
        time.sleep(0.02)
    return not _alive(pid)


def _kill_cgroups(dirs: list[str]) -> None:
    """Test cleanup for a cgroup whose record the test removed on purpose."""
    for d in dirs:
        for f in glob.glob(f"{d}/**/cgroup.procs", recursive=True):
            for pid in open(f).read().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
    for d in dirs:
        for _ in range(100):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                reap_orphans()
                time.sleep(0.02)


# --- B: state.json as big as the config makes it ------------------------------------------

def test_big_annotations_give_a_state_json_every_command_reads(ocish, make_bundle):
    """100000 annotations (config.json 1.4 MB, under the 16 MiB cap): list, state and
    delete -f work, and delete -f leaves no init and no cgroup."""
    b = make_bundle(["sleep", "100"], mutate=lambda s: s.__setitem__(
        "annotations", {str(i): "v" for i in range(100000)}))
    assert os.path.getsize(b / "config.json") > 1 << 20
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    try:
        assert os.path.getsize(os.path.join(ocish.root, c, "state.json")) > 1 << 20
        p = ocish("list", "-f", "json")
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert [s["status"] for s in json.loads(p.stdout)] == ["created"]
        st = ocish.state(c)
        assert st["status"] == "created" and len(st["annotations"]) == 100000
        pid = st["pid"]
        d = ocish("delete", "-f", c)
        assert d.returncode == 0 and d.stderr == "", d.stderr
        assert _gone(pid), "the init survived delete -f"
        assert [x for x in _leaves(c) if os.path.exists(x)] == []
        assert not os.path.exists(os.path.join(ocish.root, c))
    finally:
        _kill_cgroups(_leaves(c))



# --- C: an unusable or lost state.json of a live container --------------------------------

def _corrupt(path: str, how: str) -> None:
    if how == "missing":
        os.unlink(path)
        return
    if how == "pid-x":
        st = json.loads(open(path).read())
        st["pid"] = "x"
        text = json.dumps(st).encode()
    else:
        text = {"brace": b"{", "random": os.urandom(4096)}[how]
    with open(path, "wb") as f:
        f.write(text)


@pytest.mark.parametrize("how", ["brace", "random", "pid-x", "missing"])
@pytest.mark.parametrize("own_path", [False, True])
def test_delete_f_recovers_a_live_container_from_an_unusable_state_json(ocish, make_bundle, how,
                                                                       own_path):
    """list and state warn on one line; delete -f kills the container's processes, removes
    its cgroups (the config copy's cgroupsPath, or the default one) and its folder, exits 0;
    the id then runs again."""
    c = cid()
    path = f"/ocish-test-own/{c}" if own_path else None
    b = make_bundle(["sleep", "100"], mutate=lambda s: s["linux"].__setitem__(
        "cgroupsPath", path) if path else None)
    ocish("run", "-d", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    ocish("exec", "-d", c, "sleep", "100", check=True)  # a second process, known only to the cgroup
    leaves = _leaves(c, path)
    try:
        _corrupt(os.path.join(ocish.root, c, "state.json"), how)
        p = ocish("list", "-q")
        assert p.returncode == 0 and p.stdout.split() == [c]
        assert p.stderr.startswith(f"ocish: warning: container {c}: state.json: ")
        assert len(p.stderr.splitlines()) == 1
        one_line(ocish("state", c))
        one_line(ocish("delete", c))  # without -f: nothing is touched
        assert _alive(pid)
        d = ocish("delete", "-f", c)
        assert (d.returncode, d.stderr) == (0, "")
        assert _gone(pid), "the init survived delete -f"
        assert [x for x in leaves if os.path.exists(x)] == []
        assert not os.path.exists(os.path.join(ocish.root, c))
        ocish("create", "-b", str(b), c, check=True)  # reusable: no "not empty"
        r = ocish("delete", "-f", c)
        assert r.returncode == 0, r.stderr
        assert [x for x in leaves if os.path.exists(x)] == []
    finally:
        _kill_cgroups(leaves)
        if path:
            _kill_cgroups(sorted({os.path.dirname(x) for x in leaves}))


def test_create_refuses_a_cgroup_that_still_has_processes(ocish, make_bundle):
    """A container whose record was removed behind ocish's back still runs in /ocish/<id>: a
    new create of that id refuses to join it (runc 1.2), touches nothing of it, leaves
    nothing of its own; once the old one is gone the id works, and its delete removes the
    cgroup it found there."""
    c = cid()
    b = make_bundle(["sleep", "100"])
    ocish("run", "-d", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    leaves = _leaves(c)
    try:
        shutil.rmtree(os.path.join(ocish.root, c))  # the record is lost, the container runs
        msg = one_line(ocish("create", "-b", str(b), c))
        assert "container's cgroup is not empty: 1 process(es) found" in msg, msg
        assert "/linux/cgroupsPath" in msg
        assert _alive(pid) and all(os.path.isdir(x) for x in leaves)
        assert not os.path.exists(os.path.join(ocish.root, c))
        os.kill(pid, 9)
        assert _gone(pid)
        ocish("create", "-b", str(b), c, check=True)  # the empty cgroup left there: joined
        d = ocish("delete", "-f", c)
        assert (d.returncode, d.stderr) == (0, "")
        assert [x for x in leaves if os.path.exists(x)] == []
    finally:
        _kill_cgroups(leaves)


# --- D: folders that are not ours -----------------------------------------------------------

def test_a_users_folder_is_neither_listed_nor_removed(ocish, make_bundle):
    b = make_bundle(["true"])
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    victim = os.path.join(ocish.root, "victim")
    os.makedirs(os.path.join(victim, "sub"))
    with open(os.path.join(victim, "data.txt"), "w") as f:
        f.write("precious\n")
    os.makedirs(os.path.join(ocish.root, "victim2"))  # empty, but made 0755 by someone else
    p = ocish("list", "-q")
    assert (p.returncode, p.stdout.split(), p.stderr) == (0, [c], "")
    for args in (["delete", "-f", "victim"], ["delete", "victim"], ["state", "victim"],
                 ["start", "victim"], ["kill", "victim"], ["delete", "victim2"],
                 ["delete", "-f", "victim2"]):
        msg = one_line(ocish(*args))
        assert "is not an ocish container" in msg and "left as it is" in msg, msg
    assert open(os.path.join(victim, "data.txt")).read() == "precious\n"
    assert os.path.isdir(os.path.join(victim, "sub"))
    assert os.path.isdir(os.path.join(ocish.root, "victim2"))
    assert ocish.state(c)["status"] == "created"


def test_a_file_left_in_a_state_dir_is_kept_and_named(ocish, make_bundle):
    """delete removes only the names ocish makes: the container goes, the stranger's file
    stays, and delete says so on one line."""
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "100"])), c, check=True)
    pid = ocish.state(c)["pid"]
    note = os.path.join(ocish.root, c, "notes.txt")
    with open(note, "w") as f:
        f.write("mine\n")
    msg = one_line(ocish("delete", "-f", c))
    assert '"notes.txt", which ocish did not make' in msg, msg
    assert _gone(pid) and [x for x in _leaves(c) if os.path.exists(x)] == []
    assert os.listdir(os.path.join(ocish.root, c)) == ["notes.txt"]


@pytest.mark.skipif(not RUNC, reason="runc is not installed")
def test_runc_containers_are_not_ours(make_bundle, tmp_path):
    """ocish pointed at runc's root: runc's container is not listed, and delete -f refuses it
    (runc's state.json has init_process_pid) instead of orphaning `runc init`."""
    root, rc = str(tmp_path / "runc"), cid()
    b = make_bundle(["sleep", "100"])
    subprocess.run(["runc", "--root", root, "create", "-b", str(b), rc], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p = run_ocish("list", "-q", root=root)
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
        for args in (["delete", "-f", rc], ["state", rc]):
            msg = one_line(run_ocish(*args, root=root))
            assert "its state.json was written by runc" in msg, msg
        st = json.loads(subprocess.run(["runc", "--root", root, "state", rc], check=True,
                                       capture_output=True, text=True).stdout)
        assert st["status"] == "created" and _alive(st["pid"])
    finally:
        subprocess.run(["runc", "--root", root, "delete", "-f", rc], capture_output=True)


def test_proc_is_no_container_root():
    p = run_ocish("list", "-q", root="/proc/self")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert "is not an ocish container" in one_line(run_ocish("delete", "-f", "fd",
                                                             root="/proc/self"))
