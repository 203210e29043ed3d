"""Malformed input through the command line (issue 8, item 6): one line on stderr, no traceback,
nothing left behind; valid extremes accepted, as runc accepts them, and checked from inside."""
from __future__ import annotations

import glob
import json
import os

import pytest

from tests.conftest import cid, needs_root, reap_orphans

pytestmark = needs_root


def one_line(p, code: int = 1) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    lines = p.stderr.split("\n")
    assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("ocish: "), p.stderr
    return lines[0]


def nothing_left(ocish, c: str) -> None:
    reap_orphans()
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []


@pytest.mark.parametrize("text", ["{", "[1", '{"ociVersion": "1.2.0", "process": {"args": [',
                                  '{"a" 1}', "", "\ufeff{", "\x00"])
def test_truncated_config_json(ocish, make_bundle, text):
    b = make_bundle(["true"])
    (b / "config.json").write_text(text)
    c = cid()
    assert "config.json: " in one_line(ocish("create", "-b", str(b), c))
    nothing_left(ocish, c)


@pytest.mark.parametrize("kind", ["fifo", "dir", "device", "huge"])
def test_config_json_not_a_sane_file(ocish, make_bundle, kind):
    b = make_bundle(["true"])
    cfg = b / "config.json"
    cfg.unlink()
    if kind == "fifo":
        os.mkfifo(cfg)
    elif kind == "dir":
        cfg.mkdir()
    elif kind == "device":
        cfg.symlink_to("/dev/zero")
    else:
        with open(cfg, "wb") as f:
            f.truncate(64 << 20)
    c = cid()
    msg = one_line(ocish("create", "-b", str(b), c, timeout=10))  # a FIFO must not block us
    assert ("larger than" if kind == "huge" else "not a regular file") in msg
    nothing_left(ocish, c)


def test_truncated_process_and_resources(ocish, make_bundle, tmp_path):
    b = make_bundle(["sleep", "30"])
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    for text in ("{", "[1", "", "[" * 100000):
        f = tmp_path / "doc.json"
        f.write_text(text)
        assert "invalid json" in one_line(ocish("exec", "--process", str(f), c), 255)
        assert "invalid json" in one_line(ocish("update", "-r", str(f), c))
        with open(f) as stdin:
            assert "invalid json" in one_line(ocish("update", "-r", "-", c, stdin=stdin))
    assert ocish.state(c)["status"] == "running"


def test_rlimit_infinity_is_unlimited_inside(ocish, make_bundle):
    """2**64-1 is RLIM_INFINITY (runc takes it); 2**63 is a finite u64 limit."""
    b = make_bundle(["sh", "-c", "grep -E 'core|data' /proc/self/limits"], mutate=lambda s: s[
        "process"].__setitem__("rlimits", [
            {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
            {"type": "RLIMIT_DATA", "soft": 2**63, "hard": 2**64 - 2}]))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0, p.stderr
    data, core = p.stdout.splitlines()
    assert core.split()[-3:-1] == ["unlimited", "unlimited"]
    assert data.split()[-3:-1] == [str(2**63), str(2**64 - 2)]


def test_hook_timeout_of_int64_max_runs(ocish, make_bundle):
    b = make_bundle(["true"], mutate=lambda s: s.__setitem__(
        "hooks", {"createRuntime": [{"path": "/bin/true", "timeout": 2**63 - 1}]}))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("mutate,where", [
    (lambda s: s["linux"].__setitem__("devices", [
        {"path": "/dev/x", "type": "c", "major": 1, "minor": 2**31}]), "/linux/devices/0/minor"),
    (lambda s: s["linux"].__setitem__("devices", [
        {"path": "/dev/x", "type": "c", "major": 4096, "minor": 1}]), "/linux/devices/0/major"),
    (lambda s: (s["linux"]["namespaces"].append({"type": "time"}), s["linux"].__setitem__(
        "timeOffsets", {"monotonic": {"secs": 2**63 - 1}})), "/linux/timeOffsets"),
    (lambda s: s["linux"]["resources"].__setitem__("cpu", {"shares": 2**64 - 1}),
     "/linux/resources/cpu/shares"),
    (lambda s: s["linux"]["resources"].__setitem__("pids", {"limit": 2**63 - 1}),
     "/linux/resources/pids/limit"),
    (lambda s: s["process"].__setitem__("rlimits", [
        {"type": "RLIMIT_NOFILE", "soft": 2**64 - 1, "hard": 2**64 - 1}]), "/process/rlimits/0"),
    (lambda s: s["process"].__setitem__("args", ["a\nb\x1b[2J"]), "/process/args/0"),
    (lambda s: s["mounts"].append({"destination": "/mnt\nx", "type": "no\nfs", "source": "x"}),
     "/mounts/7"),
])
def test_extremes_refused_on_one_line(ocish, make_bundle, mutate, where):
    """Values the kernel cannot take are refused with the pointer, never an OverflowError;
    newlines and control characters in them are escaped."""
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    assert where in one_line(ocish("create", "-b", str(b), c))
    nothing_left(ocish, c)


def test_newline_is_escaped_in_the_message(ocish, make_bundle):
    b = make_bundle(["no\nsuch\rprogram"])
    msg = one_line(ocish("create", "-b", str(b), cid()))
    assert '"no\\nsuch\\rprogram"' in msg


@pytest.mark.parametrize("where", ["missing/dir/log", "", "ro"])
def test_unusable_log_is_one_clear_line(ocish, tmp_path, where):
    """runc opens --log first and fails at once; so do we, when there is an error to log or
    not (the old code raised a traceback while logging the error)."""
    path = {"": str(tmp_path), "missing/dir/log": str(tmp_path / where),
            "ro": "/sys/ocish-log"}[where]  # sysfs: no new files, even for root
    for args in (["state", "nope"], ["list"]):
        msg = one_line(ocish("--log", path, "--log-format", "json", *args))
        assert msg.startswith("ocish: --log ")


@pytest.mark.parametrize("args,fragment", [
    (["kill", "{c}", "99999999999999999999"], "unknown signal"),
    (["kill", "{c}", "\u0663"], "unknown signal"),
    (["update", "--memory", "9" * 400, "{c}"], "invalid size"),
    (["update", "--pids-limit", "\u0663", "{c}"], "is not an integer"),
    (["events", "--interval", "9" * 400 + "s", "{c}"], "invalid duration"),
    (["exec", "--preserve-fds", "-3", "{c}", "true"], "--preserve-fds"),
    (["exec", "--preserve-fds", "99999999999999999999", "{c}", "true"], "open-file limit"),
    (["exec", "--preserve-fds", "7", "{c}", "true"], "is not open"),
    (["state", "../../etc"], "invalid container id"),
    (["delete", "-f", "a\nb"], "invalid container id \"a\\nb\""),
])
def test_command_line_extremes(ocish, make_bundle, args, fragment):
    b = make_bundle(["sleep", "30"])
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    p = ocish(*[a.format(c=c) for a in args])
    assert p.returncode in (1, 255)
    assert fragment in one_line(p, p.returncode)
    assert ocish.state(c)["status"] == "running"


def test_unwritable_pid_file_leaves_nothing(ocish, make_bundle, tmp_path):
    """runc destroys the container it cannot write the pid file of."""
    b = make_bundle(["true"])
    c = cid()
    for path in (tmp_path / "missing" / "pid", tmp_path):
        assert "--pid-file" in one_line(ocish("create", "--pid-file", str(path), "-b", str(b), c))
        nothing_left(ocish, c)
    assert sorted(os.listdir(tmp_path)) == ["bundle1"]  # no temporary file either


def test_list_skips_nothing_and_survives_garbage(ocish, make_bundle):
    """Folders that are no containers are not listed; a container without state.json is."""
    b = make_bundle(["true"])
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    os.makedirs(os.path.join(ocish.root, "not an id"))
    open(os.path.join(ocish.root, "afile"), "w").close()
    os.makedirs(os.path.join(ocish.root, "half"))  # a create killed before its first write
    p = ocish("list", "-f", "json")
    assert p.returncode == 0 and p.stderr == ""
    assert {s["id"]: s["status"] for s in json.loads(p.stdout)} == {c: "created", "half": "stopped"}
    assert ocish("delete", "half").returncode == 0
    assert not os.path.exists(os.path.join(ocish.root, "half"))
