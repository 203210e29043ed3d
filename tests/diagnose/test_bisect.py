"""`ocish bisect GOOD BAD` on real bundles, as a user runs it: the minimal change is named by its
pointer and patch op, the patch really turns GOOD into a bundle the runtime cannot run (checked
with `ocish run`, not with bisect's word), the other changes really are in effect and harmless
(read back from /proc inside the container), the search is short, and nothing is left behind
(TMPDIR, cgroups, mounts, processes). Errors: one line each, with the documented exit status.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, children, cid, mount_count, needs_root, reap_orphans
from tests.diagnose.jsonpatch import apply
from tests.diagnose.test_diagnose import _lasting, _our_cgroups

pytestmark = needs_root
WINDOW = "0.5"
PROBE = ("cat /proc/sys/kernel/hostname; tr '\\0' '\\n' < /proc/self/environ; "
         "grep 'open files' /proc/self/limits; grep CapBnd /proc/self/status; pwd; "
         "grep -c ' /data ' /proc/self/mountinfo")


class Bisect:
    def __init__(self, p: subprocess.CompletedProcess, seconds: float) -> None:
        self.rc, self.out, self.err, self.seconds = p.returncode, p.stdout, p.stderr, seconds

    @property
    def result(self) -> dict:
        return json.loads(self.out)


def bisect(*args: str, tmpdir: Path) -> Bisect:
    """`ocish bisect ARGS` (stderr a pipe: plain progress lines) with its own TMPDIR, checked
    empty afterwards with the cgroups, mounts and processes it could have left."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir))
    kids, mounts = children(), mount_count()
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ocish", "bisect", *args], capture_output=True,
                       text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    assert "Traceback" not in p.stderr, p.stderr
    assert list(tmpdir.iterdir()) == [], "left behind in TMPDIR"
    assert _lasting(_our_cgroups()) == []
    assert mount_count() == mounts
    reap_orphans()
    assert children() <= kids, "a process was left behind"
    return Bisect(p, seconds)



def _config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())


def _beside(good: Path, name: str, config: dict) -> Path:
    """A bundle of config.json alone, its root.path GOOD's rootfs (absolute)."""
    d = good.parent / name
    d.mkdir()
    config = copy.deepcopy(config)
    config["root"]["path"] = str(good / "rootfs")
    (d / "config.json").write_text(json.dumps(config, indent=1))
    return d


CULPRITS = {
    "mount": (lambda c: c["mounts"].append({"destination": "/cache", "type": "bind",
                                            "source": "/nonexistent/cache",
                                            "options": ["rbind"]}),
              lambda c: c["mounts"].pop()),
    "args": (lambda c: c.__setitem__("process", {**c["process"], "args": ["/bin/no-such-tool"]}),
             None),
}


def _nine_harmless(c: dict) -> None:
    p = c["process"]
    p["env"].append("GREETING=hello")
    p["env"] = [e if not e.startswith("TERM=") else "TERM=dumb" for e in p["env"]]
    p["capabilities"]["bounding"].append("CAP_CHOWN")
    p["cwd"] = "/tmp"
    p["rlimits"][0]["soft"] = 512
    c["hostname"] = "bisected"
    c["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                        "options": ["size=1m"]})
    c["annotations"] = {"org.example/owner": "ops"}
    c["linux"]["maskedPaths"] = c["linux"].get("maskedPaths", []) + ["/proc/kcore2"]


@pytest.mark.parametrize("culprit", sorted(CULPRITS))
def test_one_breaking_change_among_ten_is_named(culprit, make_bundle, tmpdir_empty, ocish):
    good = make_bundle(["true"])
    good_config = _config(good)
    bad_config = copy.deepcopy(good_config)
    _nine_harmless(bad_config)
    CULPRITS[culprit][0](bad_config)
    bad = _beside(good, "bad", bad_config)

    run = bisect(str(good), str(bad), "--json", "--timeout", WINDOW, tmpdir=tmpdir_empty)
    assert run.rc == 0, (run.out, run.err)
    r = run.result
    assert len(r["differences"]) == 10, r["differences"]
    n = len(good_config["mounts"])
    want = {"mount": [{"op": "add", "path": f"/mounts/{n}", "value": bad_config["mounts"][-1]}],
            "args": [{"op": "replace", "path": "/process/args",
                      "value": ["/bin/no-such-tool"]}]}[culprit]
    assert r["patch"] == want
    assert [c["path"] for c in r["minimal"]] == {"mount": [f"/mounts/{n + 1}"],
                                                 "args": ["/process/args"]}[culprit]
    first = next(f for f in r["diagnosis"]["findings"] if f["severity"] == "error")
    assert first["stage"] == {"mount": "mounts", "args": "exec"}[culprit], first
    assert first["pointer"] == {"mount": f"/mounts/{n}/source",
                                "args": "/process/args/0"}[culprit], first
    assert first["errno_name"] == "ENOENT" and first["fix"], first
    assert r["reproduced"] is True
    # the search: far fewer than the 2^10 subsets, and quick
    tried = [line for line in run.err.splitlines() if line.startswith("bisect: try ")]
    assert len(tried) == r["tries"] <= 12, run.err  # good, bad and the candidates
    assert run.seconds < 30
    print(f"\nbisect {culprit}: {r['tries']} tries, {r['cached']} cached, "
          f"{r['seconds']:.2f}s (wall {run.seconds:.2f}s)")

    # the patch, applied by another applier and run by the runtime itself, fails ...
    patched = copy.deepcopy(good_config)
    patched["root"]["path"] = str(good / "rootfs")
    p = ocish("run", "--bundle", str(_beside(good, "patched", apply(patched, r["patch"]))),
              cid())
    assert p.returncode != 0 and "no such file or directory" in p.stderr, (p.stdout, p.stderr)
    # ... while bad without it runs, the nine other changes in effect (as /proc says)
    harmless = copy.deepcopy(bad_config)
    if CULPRITS[culprit][1]:
        CULPRITS[culprit][1](harmless)
    harmless["process"]["args"] = ["sh", "-c", PROBE]
    p = ocish("run", "--bundle", str(_beside(good, "harmless", harmless)), cid())
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = p.stdout.splitlines()
    assert out[0] == "bisected" and "GREETING=hello" in out and "TERM=dumb" in out, out
    limits = next(line for line in out if line.startswith("Max open files"))
    assert limits.split()[3] == "512", limits
    capbnd = int(next(line for line in out if line.startswith("CapBnd")).split()[1], 16)
    assert capbnd & 1, "CAP_CHOWN (bit 0) in the bounding set"
    assert out[-2:] == ["/tmp", "1"], out


def test_two_changes_needed_together_are_both_returned(make_bundle, tmpdir_empty, ocish):
    """A read-only rootfs (harmless for `true`) and a process that writes to / (harmless on a
    writable rootfs): only both fail, with the process's exit status 1."""
    good = make_bundle(["true"], mutate=lambda c: c["root"].update(readonly=False))
    good_config = _config(good)
    bad_config = copy.deepcopy(good_config)
    bad_config["root"]["readonly"] = True
    bad_config["process"]["args"] = ["sh", "-c", "echo x > /probe"]
    bad_config["hostname"] = "two"
    bad_config["process"]["env"].append("A=1")
    bad = _beside(good, "bad", bad_config)

    run = bisect(str(good / "config.json"), str(bad / "config.json"), "--json", "--timeout",
                 WINDOW, "--no-trace", tmpdir=tmpdir_empty)
    assert run.rc == 0, (run.out, run.err)
    r = run.result
    assert len(r["differences"]) == 4
    assert sorted(op["path"] for op in r["patch"]) == ["/process/args", "/root/readonly"]
    assert all(op["op"] == "replace" for op in r["patch"])
    first = next(f for f in r["diagnosis"]["findings"] if f["severity"] == "error")
    assert "Read-only file system" in " ".join(first["evidence"]), first
    print(f"\nbisect pair: {r['tries']} tries, {r['cached']} cached, {r['seconds']:.2f}s")
    # each alone runs (exit 0), both together exit 1: the runtime's word
    base = copy.deepcopy(good_config)
    base["root"]["path"] = str(good / "rootfs")
    codes = []
    for name, ops in (("one", r["patch"][:1]), ("other", r["patch"][1:]), ("both", r["patch"])):
        codes.append(ocish("run", "--bundle", str(_beside(good, name, apply(base, ops))),
                           cid()).returncode)
    assert codes == [0, 0, 1]


def test_errors_are_one_line_with_their_exit_status(make_bundle, tmp_path, tmpdir_empty):
    good = make_bundle(["true"])
    failing = make_bundle(["/bin/no-such-tool"])
    starts = make_bundle(["true"], mutate=lambda c: c.__setitem__("hostname", "other"))
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "broken.json").write_text("{")
    same = _beside(good, "same", _config(good))  # another directory, the same rootfs
    cases = [((good, same), 5, "are the same config: nothing to bisect"),
             ((failing, good), 3, "fails by itself (setup failed at stage exec"),
             ((good, starts), 4, "starts (started; exit status 0"),
             ((tmp_path / "nope", good), 2, "good {}: no such file or directory"),
             ((good, tmp_path / "list.json"), 2, "bad {}: not a JSON object"),
             ((good, tmp_path / "broken.json"), 2, "bad {}: invalid json at line 1 column 2"),
             ((good, tmp_path), 2, "bad {}: config.json: no such file or directory")]
    for (g, b), status, words in cases:
        run = bisect(str(g), str(b), "--timeout", WINDOW, "--quiet", tmpdir=tmpdir_empty)
        words = words.format(b if status == 2 and "bad" in words else g)
        assert run.rc == status and run.out == "", (g, b, run.rc, run.out, run.err)
        assert run.err.count("\n") == 1 and run.err.startswith("ocish: bisect: "), run.err
        assert words in run.err, run.err
    run = bisect(str(good), str(tmp_path / "list.json"), "--json", tmpdir=tmpdir_empty)
    assert run.rc == 2 and run.result == {"error": f"bad {tmp_path / 'list.json'}: not a JSON "
                                                   "object", "exit_status": 2}


def test_a_failure_that_goes_away_is_reported_flaky(make_bundle, tmpdir_empty):
    """BAD's program fails its first two runs (a counter in the rootfs), then exits 0: bad
    fails, the search finds /process/args, and the diagnosis sees it start: exit status 1."""
    script = "n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) > /n; [ $n -lt 2 ] && exit 3; exit 0"
    good = make_bundle(["true"], mutate=lambda c: c["root"].update(readonly=False))
    bad_config = _config(good)
    bad_config["process"]["args"] = ["sh", "-c", script]
    bad_config["hostname"] = "flaky"
    run = bisect(str(good), str(_beside(good, "bad", bad_config)), "--json", "--timeout", WINDOW,
                 tmpdir=tmpdir_empty)
    assert run.rc == 1, (run.out, run.err)
    r = run.result
    assert [op["path"] for op in r["patch"]] == ["/process/args"]
    assert r["reproduced"] is False and "comes and goes" in r["notes"][0]
    assert (good / "rootfs" / "n").read_text() == "3\n"  # bad, args alone, the diagnosis


def test_the_containers_state_goes_under_root(make_bundle, tmp_path, tmpdir_empty):
    """--root R (new): each dry run's temporary --root is made in R while it runs (seen
    there); R is removed at the end."""
    good = make_bundle(["sleep", "5"])
    bad_config = _config(good)
    bad_config["mounts"].append({"destination": "/cache", "type": "bind",
                                 "source": "/nonexistent/cache", "options": ["rbind"]})
    root = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir_empty))
    proc = subprocess.Popen([sys.executable, "-m", "ocish", "--root", str(root), "bisect", "-q",
                             "--timeout", "1", str(good), str(_beside(good, "bad", bad_config))],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    try:
        while proc.poll() is None:
            if root.is_dir():
                seen |= {p.name.split("-")[1] for p in root.iterdir()}
            time.sleep(0.05)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen == {"diagnose"}, seen
    assert not root.exists() and list(tmpdir_empty.iterdir()) == []
    reap_orphans()


def test_progress_on_a_terminal_is_a_rich_bar(make_bundle, tmp_path, tmpdir_empty):
    """stderr a terminal: rich's bar (changes ruled out), no plain lines; stdout (a file here)
    gets the plain result."""
    good = make_bundle(["true"])
    bad_config = _config(good)
    bad_config["process"]["args"] = ["/bin/no-such-tool"]
    bad_config["hostname"] = "other"
    master, slave = os.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir_empty), TERM="xterm",
               COLUMNS="120")
    with open(tmp_path / "out", "w+") as out:
        p = subprocess.run([sys.executable, "-m", "ocish", "bisect", "--timeout", WINDOW,
                            str(good), str(_beside(good, "bad", bad_config))], env=env,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=slave, timeout=60)
        os.close(slave)
        out.seek(0)
        result = out.read()
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the writer is gone
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    text = screen.decode("utf-8", "replace")
    assert p.returncode == 0, (result, text)
    assert "ruled out" in text and "bisect: try" not in text, text
    assert "\x1b[" in text  # drawn (and cleared: transient) with escape sequences
    assert result.startswith("ocish bisect ") and "\x1b[" not in result, result
