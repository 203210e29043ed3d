"""Conditional breakpoints (`break mounts if type == bind`), tbreak, ignore counts with
conditions (gdb's semantics) and `break on error`, checked against the container process's
/proc/PID/mountinfo between steps."""
from __future__ import annotations

from tests.conftest import needs_root
from tests.shell.conftest import alive, blocked

pytestmark = needs_root


def _bind_and_bad(with_bad: bool):
    def mutate(spec):
        spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/etc",
                               "options": ["rbind", "ro"]})
        if with_bad:
            spec["mounts"].append({"destination": "/bad", "type": "nosuchfs", "source": "none"})
    return mutate


def _mountpoints(pid: int) -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_a_conditional_breakpoint_stops_only_on_the_bind_mount(session, make_bundle):
    b = make_bundle(["sleep", "100"], mutate=_bind_and_bad(False))
    s = session(b)
    assert "no step of mounts has a field 'typ' (fields: destination, item, options, " \
        in s.cmd("break mounts if typ == bind")
    assert "breakpoint 1 before mounts (every step) if type == bind" in \
        s.cmd('break mounts if type == "bind"')
    run = s.json("continue --json")
    assert run["stop"] == {"reason": "breakpoint", "next": "mounts /mounts/7",
                           "text": "mount(2) bind /etc on /mnt (rbind,ro)", "breakpoint": 1,
                           "temporary": False, "failing": ""}
    pid = s.json("inspect proc --json")["pid"]
    assert blocked(pid)
    # every other mount of the stage was run, the bind not yet
    points = _mountpoints(pid)
    assert f"{b}/rootfs/proc" in points and f"{b}/rootfs/mnt" not in points
    s.cmd("step")
    assert f"{b}/rootfs/mnt" in _mountpoints(pid)
    assert s.json("continue --json")["stop"]["reason"] == "created"  # no other bind
    assert s.json("info breakpoints --json")[0]["hits"] == 1  # false crossings are no hits
    # gdb: the ignore count is used only where the condition holds; a tbreak goes once it stops
    s.cmd("restart")
    s.cmd("ignore 1 1")
    s.cmd("tbreak mounts if destination == /proc, type != bind")
    run = s.json("continue --json")
    assert run["stop"]["next"] == "mounts /mounts/0" and run["stop"]["temporary"]
    assert [b["number"] for b in s.json("info breakpoints --json")] == [1]
    assert s.json("continue --json")["stop"]["reason"] == "created"
    bp = s.json("info breakpoints --json")[0]
    assert bp["hits"] == 2 and bp["ignore"] == 0
    assert "stop only if type == bind" in s.cmd("info breakpoints")
    # gdb: a tbreak that stops the run where another breakpoint does goes too
    s.cmd("restart")
    s.cmd("tbreak mounts /mounts/7")
    assert s.json("continue --json")["stop"]["next"] == "mounts /mounts/7"
    assert [b["number"] for b in s.json("info breakpoints --json")] == [1]


def test_break_on_error_stops_before_the_failing_mount(session, make_bundle):
    b = make_bundle(["sleep", "100"], mutate=_bind_and_bad(True))
    s = session(b)
    s.cmd("break on error")
    out = s.cmd("continue")
    assert "tried mounts /mounts/8: it fails" in out
    assert ('breakpoint 1, stopped before mounts /mounts/8, which fails: stage mounts: mount '
            '"none" on "/bad" (config /mounts/8): no such device') in out
    run_stop = s.json("stages --json")
    mounts = next(r for r in run_stop if r["name"] == "mounts")
    assert [i["status"] for i in mounts["items"] if i["item"] == "/mounts/8"] == ["next"]
    pid = s.json("inspect proc --json")["pid"]
    assert alive(pid) and blocked(pid)  # the container side still serves
    points = _mountpoints(pid)
    assert f"{b}/rootfs/mnt" in points and f"{b}/rootfs/bad" not in points
    # continue runs it again: a second failure stands, as without the breakpoint
    out = s.cmd("expect continue -> fails, stage == mounts, errno == ENODEV, pointer == /mounts/8")
    assert "\nok: continue -> fails" in out, out
    assert s.json("info breakpoints --json")[0]["hits"] == 1
    s.cmd("restart")  # the same stop again, for a script's `expect`
    out = s.cmd("expect continue -> reason == breakpoint, next == \"mounts /mounts/8\", "
                "failing matches \"no such device$\"")
    assert "\nok: continue -> " in out, out


def test_break_on_error_does_not_stop_a_setup_that_works(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break on error")
    assert s.json("continue --json")["stop"]["reason"] == "created"
    assert s.json("info breakpoints --json")[0]["hits"] == 0
