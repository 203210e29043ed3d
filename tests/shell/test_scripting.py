"""What scripts rely on: the exit status and the streams of a piped session (errors on stderr,
data on stdout, `--errexit` / `set errexit on`), and `--json` on every command that returns
data, checked against /proc, the cgroup files and the runtime's own CLI."""
from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO, cid, needs_root, ocish_cmd
from tests.shell.conftest import alive, cgroup_dirs

pytestmark = needs_root


def _script(ocish, bundle, lines: list[str], *flags: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run a whole session from a script on stdin, stdout and stderr apart."""
    c = cid()
    p = subprocess.run(ocish_cmd() + ["debug", str(bundle), "--id", c, "--root", ocish.root,
                                      "--plain", *flags],
                       input="".join(line + "\n" for line in lines), capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return p, c


def _after(transcript: str, line: str) -> str:
    """The output of `line` in a transcript (up to the next prompt)."""
    rest = transcript.split(f"(ocish) {line}\n", 1)[1]
    return rest.split("(ocish) ", 1)[0]


def _bogus_mount(spec):
    spec["mounts"].insert(1, {"destination": "/mnt", "type": "bogusfs", "source": "x"})


def test_a_clean_session_exits_0_with_data_alone_on_stdout(ocish, make_bundle):
    """Piped, stdout is the commands' data and nothing else: the transcript (prompt and echo,
    banner, each step's progress) is on stderr, or nowhere with --quiet."""
    lines = ["# a comment line", "continue   # to the end", "state --json", "quit"]
    b = make_bundle(["sleep", "100"])
    p, c = _script(ocish, b, lines)
    assert p.returncode == 0, p.stderr
    first, data = p.stdout.split("\n", 1)  # continue's data, then state's: nothing else
    assert first.startswith(f"setup complete: container {c} created")
    st = json.loads(data)
    assert st["id"] == c and st["status"] == "created"
    assert "(ocish)" not in p.stdout and "ran cgroup" not in p.stdout
    assert p.stderr.startswith(f"bundle {b}, container {c}, root {ocish.root}\n")
    assert "(ocish) continue   # to the end\nran cgroup (host side)\n" in p.stderr
    assert "error" not in p.stderr
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)
    # --quiet: no transcript at all; data as before
    p, c = _script(ocish, make_bundle(["sleep", "100"]), ["inspect ns --json", "quit"], "--quiet")
    assert p.returncode == 0 and p.stderr == ""
    assert {n["kind"] for n in json.loads(p.stdout)["items"]} >= {"mnt", "pid", "net"}


def test_piped_into_jq(ocish, make_bundle):
    """The reviewer's pipeline: `printf 'inspect ns --json\\n' | ocish debug B | jq`."""
    b = make_bundle(["sleep", "100"])
    c = cid()
    cmd = " ".join(ocish_cmd() + ["debug", str(b), "--id", c, "--root", ocish.root])
    p = subprocess.run(f"printf 'inspect ns --json\\n' | {cmd} | jq -r '.items[].kind'",
                       shell=True, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    assert set(p.stdout.split()) >= {"mnt", "pid", "net", "uts", "ipc"}
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)


def test_failures_go_to_stderr_and_the_session_exits_1(ocish, make_bundle):
    p, c = _script(ocish, make_bundle(["sleep", "100"], mutate=_bogus_mount),
                   ["bogus", "break nope", "stages --bad", "continue", "inspect ns --json",
                    "quit"])
    assert p.returncode == 1
    err = p.stderr.splitlines()
    assert "error: unknown command 'bogus' (`help` lists the commands)" in err
    assert any(ln.startswith("error: no stage 'nope'") for ln in err)
    assert "error: stages: unknown flag --bad (it takes --paths, --json); usage: stages" in err
    assert 'FAILED: stage mounts: mount "x" on "/mnt" (config /mounts/1): no such device' in err
    assert err[-1] == "ocish: 4 command(s) failed (input line 1, 2, 3, 4)"
    # stdout is data alone: the JSON of the half-set-up process, matching /proc
    ns = json.loads(p.stdout)
    assert ns["pid"] > 0 and {n["kind"] for n in ns["items"]} >= {"mnt", "pid", "net"}
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)


def test_errexit_stops_at_the_first_failure(ocish, make_bundle):
    b = make_bundle(["sleep", "100"])
    for flags, lines in ((["--errexit"], []), ([], ["set errexit on"])):
        p, c = _script(ocish, b, lines + ["break pivot", "continue", "break nope", "stages",
                                          "quit"], *flags)
        assert p.returncode == 1
        at = len(lines) + 3
        assert f"ocish: stopping at line {at} (errexit): the command failed" in p.stderr
        assert "(ocish) stages" not in p.stderr  # never ran
        assert p.stderr.count("error:") == 1
        assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)


def test_json_everywhere(ocish, session, make_bundle):
    b = make_bundle(["sleep", "100"])
    s = session(b)
    rows = s.json("stages --json")
    assert [r["name"] for r in rows][:3] == ["cgroup", "unshare", "idmap"]
    assert rows[0]["status"] == "next" and rows[0]["side"] == "host"
    assert s.json("explain --json")["stage"] == "cgroup"
    s.cmd("break mount /proc")
    bps = s.json("info breakpoints --json")
    assert bps == [{"number": 1, "stage": "mounts", "items": ["/mounts/0"], "label": "mount /proc",
                    "hits": 0, "enabled": True, "temporary": False, "ignore": 0,
                    "condition": "", "on_error": False}]
    run = s.json("continue --json")  # the steps' reports are in the data, not printed
    assert [st["stage"] for st in run["steps"]][:2] == ["cgroup", "unshare"]
    assert run["stop"] == {"reason": "breakpoint", "next": "mounts /mounts/0",
                           "text": "mount(2) proc proc on /proc", "breakpoint": 1,
                           "temporary": False, "failing": ""}
    assert s.json("info b --json")[0]["hits"] == 1
    # ps: the pids in the container's cgroup, as the kernel lists them
    with open(f"/sys/fs/cgroup/pids/ocish/{s.cid}/cgroup.procs") as f:
        assert s.json("ps --json") == sorted(int(x) for x in f.read().split())
    s.cmd("step")
    d = s.json("diff --json")
    assert (d["before"], d["after"]) == ("after mounts rootfs", "after mounts /mounts/0")
    assert [ln.split()[:4] for ln in d["lines"] if ln.startswith("+mount")] == \
        [["+mount", f"{b}/rootfs/proc", "proc", "proc"]]
    s.cmd("continue")
    assert s.json("state --json") == json.loads(ocish("state", s.cid, check=True).stdout)
    mine = s.json("containers --json")
    theirs = json.loads(ocish("list", "-f", "json", check=True).stdout)
    assert [(x["id"], x["pid"], x["status"]) for x in mine] == \
        [(x["id"], x["pid"], x["status"]) for x in theirs]
    started = s.json("start --json")
    assert started["running"] and started["pid"] == s.json("state")["pid"]
    assert alive(started["pid"])
    ran = json.loads(s.cmd("exec --json sh -c 'hostname; echo oops >&2; exit 3'"))
    assert (ran["status"], ran["stdout"], ran["stderr"]) == (3, "ocish\n", "oops\n")
    assert ran["pid"] > 0 and not alive(ran["pid"])
    assert s.json("set --json")[0] == {"name": "errexit", "value": "off"}
    # kill KILL waits for the death, whose news (stderr, merged here) comes before the data
    out = s.cmd("kill --json KILL")
    assert json.loads(out[out.index("{"):]) == {"id": s.cid, "signal": "SIGKILL", "all": False,
                                                "init_alive": False}
    # a command that cannot honour a flag says so
    assert "quit returns no data: --json does not apply to it" in s.cmd("quit --json")
    assert "inspect: unknown flag --jsno (it takes --pid, --paths, --json)" in s.cmd("inspect ns --jsno")
