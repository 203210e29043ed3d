"""Security modules, personality, I/O priority, scheduler and checkpoint/restore, on real containers.

Personality, ioprio and scheduler are checked from inside a busybox container: `uname -m`,
/proc/self/personality, busybox `ionice` (which prints the calling process's class) and the nice,
rt_priority and policy fields of /proc/self/stat. AppArmor and SELinux are not enabled on these
machines: the tests check the one-line error naming the missing module and that nothing is left
behind. criu 3.17 cannot initialise on this kernel (`criu check` fails on the vDSO): the tests check
that a checkpoint reports criu's failure in one line and leaves the container running, unchanged.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import uuid

import pytest

from tests.conftest import cid, needs_root, reap_orphans

pytestmark = needs_root
CGROUP_ROOT = "/sys/fs/cgroup"


def stat_fields(text: str) -> dict:
    """nice (19), rt_priority (40) and policy (41) of a /proc/<pid>/stat line."""
    after = text[text.rindex(")") + 2:].split()  # fields from 3 on
    return {"nice": int(after[19 - 3]), "rt_priority": int(after[40 - 3]),
            "policy": int(after[41 - 3])}


def run(ocish, bundle, c: str | None = None):
    return ocish("run", "-b", str(bundle), c or cid())


def cgroup_dirs(name: str) -> list[str]:
    """Every directory named `name` one level below an `ocish` cgroup, in any hierarchy."""
    out = []
    for h in os.listdir(CGROUP_ROOT):
        d = os.path.join(CGROUP_ROOT, h, "ocish", name)
        if os.path.isdir(d):
            out.append(d)
    return out


def assert_nothing_left(ocish, c: str, bundle) -> None:
    assert not os.path.isdir(ocish.root) or c not in os.listdir(ocish.root)
    assert cgroup_dirs(c) == []
    with open("/proc/self/mountinfo") as f:
        assert str(bundle) not in f.read()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert c.encode() not in f.read(), f"process {pid} of {c} is still there"
        except OSError:
            pass


def one_line_error(p) -> str:
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


# --- AppArmor and SELinux -----------------------------------------------------------------------

LSM_CASES = [
    ("apparmor", "apparmorProfile", "process", "apparmor profile", "AppArmor", "ocish-test"),
    ("selinux", "selinuxLabel", "process", "selinux label", "SELinux",
     "system_u:system_r:container_t:s0"),
    ("selinux", "mountLabel", "linux", "mount label", "SELinux",
     "system_u:object_r:container_file_t:s0"),
]


@pytest.mark.parametrize("module,key,section,what,name,value", LSM_CASES,
                         ids=[c[1] for c in LSM_CASES])
def test_lsm_not_enabled_is_one_clear_line(ocish, make_bundle, module, key, section, what, name,
                                           value):
    from runtime.linux import lsm
    enabled, evidence = lsm.enabled(module)
    if enabled:
        pytest.skip(f"{name} is enabled on this host: the error case cannot be tested")
    names, _ = lsm.active()
    assert names is None or module not in names

    def mutate(spec):
        spec[section][key] = value
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    p = ocish("create", "-b", str(b), c)
    line = one_line_error(p)
    assert line == (f'ocish: create failed: stage lsm: {what} "{value}" (config /{section}/{key}): '
                    f"{name} is not enabled on this host ({evidence})")
    # the evidence names the active modules, from securityfs or lsm_list_modules(2)
    assert "lockdown" in evidence or "capability" in evidence or "not readable" in evidence
    assert_nothing_left(ocish, c, b)
    assert ocish("state", c).returncode == 1


def test_lsm_stage_describes_what_it_checks(make_bundle):
    from runtime.engine import Context
    from runtime.stages.attributes import Attributes, Lsm
    spec = json.loads((make_bundle(["true"]) / "config.json").read_text())
    ctx = Context("d1", "/b", spec, "/b/rootfs", "/s")
    assert "nothing to check" in Lsm().describe(ctx)
    assert "nothing to set" in Attributes().describe(ctx)
    spec["process"]["apparmorProfile"] = "p1"
    spec["linux"]["mountLabel"] = "l1"
    text = Lsm().describe(ctx)
    assert "apparmor profile 'p1' (config /process/apparmorProfile) needs AppArmor" in text
    assert "mount label 'l1' (config /linux/mountLabel) needs SELinux" in text
    assert 'context="l1"' in text and "/dev/pts" in text and "/proc," not in text
    assert "exec p1" in Attributes().describe(ctx) and Attributes().items(ctx) == ["label"]


# --- personality ----------------------------------------------------------------------------------

needs_x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="i686 is x86_64's 32-bit")


@needs_x86_64
@pytest.mark.parametrize("domain,flags,machine,persona", [
    ("LINUX32", [], "i686", "00000008"),
    ("LINUX32", ["ADDR_NO_RANDOMIZE"], "i686", "00040008"),
    ("LINUX", [], "x86_64", "00000000"),
])
def test_personality(ocish, make_bundle, domain, flags, machine, persona):
    def mutate(spec):
        spec["linux"]["personality"] = {"domain": domain, "flags": flags}
    p = run(ocish, make_bundle(["sh", "-c", "uname -m; cat /proc/self/personality"], mutate=mutate))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [machine, persona]


def test_unknown_personality_flag(ocish, make_bundle):
    def mutate(spec):
        spec["linux"]["personality"] = {"domain": "LINUX", "flags": ["NOPE"]}
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    line = one_line_error(ocish("create", "-b", str(b), c))
    assert line.startswith("ocish: create failed: stage attributes: personality NOPE "
                           "(config /linux/personality/flags/0): unknown personality flag")
    assert_nothing_left(ocish, c, b)


# --- I/O priority ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,prio,shown", [
    ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
    ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ("IOPRIO_CLASS_RT", 3, "realtime: prio 3"),  # needs CAP_SYS_ADMIN: still held in the stage
])
def test_io_priority(ocish, make_bundle, cls, prio, shown):
    def mutate(spec):
        spec["process"]["ioPriority"] = {"class": cls, "priority": prio}
    p = run(ocish, make_bundle(["ionice"], mutate=mutate))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == shown


def test_no_io_priority_leaves_the_default(ocish, make_bundle):
    p = run(ocish, make_bundle(["ionice"]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "none: prio 0"


# --- scheduler ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sched,want", [
    ({"policy": "SCHED_BATCH", "nice": 7}, {"policy": 3, "nice": 7, "rt_priority": 0}),
    ({"policy": "SCHED_IDLE"}, {"policy": 5, "rt_priority": 0}),
    ({"policy": "SCHED_OTHER", "nice": -5}, {"policy": 0, "nice": -5, "rt_priority": 0}),
    # 10 ms every 100 ms; `cat` is exec'd directly: a deadline task may not fork
    ({"policy": "SCHED_DEADLINE", "runtime": 10_000_000, "deadline": 100_000_000,
      "period": 100_000_000}, {"policy": 6, "rt_priority": 0}),
])
def test_scheduler(ocish, make_bundle, sched, want):
    def mutate(spec):
        spec["process"]["scheduler"] = sched
    p = run(ocish, make_bundle(["cat", "/proc/self/stat"], mutate=mutate))
    assert p.returncode == 0, p.stderr
    got = stat_fields(p.stdout)
    assert {k: got[k] for k in want} == want


def test_scheduler_rules_are_checked(ocish, make_bundle):
    def mutate(spec):
        spec["process"]["scheduler"] = {"policy": "SCHED_OTHER", "priority": 5}
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    line = one_line_error(ocish("create", "-b", str(b), c))
    # a config rule (runc's), checked before anything runs: lint says the same
    assert line == ("ocish: config /process/scheduler/priority: a priority can only be given "
                    "for SCHED_FIFO or SCHED_RR")
    assert_nothing_left(ocish, c, b)


def _rt_group_sched() -> str | None:
    """The v1 cpu hierarchy when the kernel groups realtime time (cpu.rt_runtime_us)."""
    for h in ("cpu", "cpu,cpuacct"):
        d = os.path.join(CGROUP_ROOT, h)
        if os.path.exists(os.path.join(d, "cpu.rt_runtime_us")) and not os.path.islink(d):
            return d
    return None


def test_realtime_policy_without_rt_runtime_is_explained(ocish, make_bundle):
    if _rt_group_sched() is None:
        pytest.skip("no RT group scheduling: SCHED_FIFO would simply work")

    def mutate(spec):
        spec["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    line = one_line_error(ocish("create", "-b", str(b), c))
    assert line.startswith("ocish: create failed: stage attributes: sched_setattr SCHED_FIFO "
                           "(config /process/scheduler): operation not permitted: a realtime policy")
    assert "/linux/resources/cpu/realtimeRuntime" in line
    assert_nothing_left(ocish, c, b)


def test_realtime_policy_with_rt_runtime(ocish, make_bundle):
    """SCHED_FIFO inside a cgroup given realtime time: the parent (ours) gets some first, since
    a new cgroup starts with none and a child cannot have more than its parent."""
    cpu = _rt_group_sched()
    parent = f"ocish-rt-{uuid.uuid4().hex[:8]}"
    c = cid()
    made = []
    if cpu is not None:
        made.append(os.path.join(cpu, parent))
        os.mkdir(made[0])
        with open(os.path.join(made[0], "cpu.rt_runtime_us"), "w") as f:
            f.write("20000")

    def mutate(spec):
        spec["linux"]["cgroupsPath"] = f"/{parent}/{c}"
        spec["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
        spec["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    try:
        p = run(ocish, make_bundle(["cat", "/proc/self/stat"], mutate=mutate), c)
        assert p.returncode == 0, p.stderr
        assert stat_fields(p.stdout) == {"policy": 1, "rt_priority": 10, "nice": 0}
    finally:
        ocish("delete", "-f", c)
        for d in made:
            os.rmdir(d)


# --- the debugger sees the new stages -----------------------------------------------------------

def test_pipeline_has_lsm_and_attributes_in_place():
    from runtime.engine import CONTAINER
    from runtime.stages import pipeline
    stages = pipeline()
    names = [s.name for s in stages]
    assert names.index("idmap") < names.index("lsm") < names.index("mounts")
    assert names.index("paths") < names.index("attributes") < names.index("bounding")
    assert all(s.side == CONTAINER for s in stages if s.name in ("lsm", "attributes"))


# --- checkpoint / restore through criu ----------------------------------------------------------

def _criu_check() -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None


@pytest.fixture(scope="module")
def criu_broken():
    p = _criu_check()
    if p is None:
        pytest.skip("criu is not installed")
    if p.returncode == 0:
        pytest.skip("criu works on this kernel: these tests cover the failure path only")
    return p


def _running(ocish, make_bundle):
    b = make_bundle(["sleep", "300"])
    c = cid()
    p = ocish("run", "-d", "-b", str(b), c)
    assert p.returncode == 0, p.stderr
    st = ocish.state(c)
    assert st["status"] == "running"
    return b, c, st


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_checkpoint_reports_criu_failure_and_leaves_container_running(ocish, make_bundle,
                                                                      tmp_path, criu_broken):
    b, c, before = _running(ocish, make_bundle)
    images = tmp_path / "images"
    p = ocish("checkpoint", "--image-path", str(images), "--tcp-established", "--ext-unix-sk",
              "--shell-job", "--file-locks", c)
    line = one_line_error(p)
    log = images / "dump.log"
    assert line.startswith("ocish: checkpoint failed: criu dump: ")
    assert line.endswith(f"; log: {log}")
    # the line carries criu's own last error, and the first one (the cause) when it differs
    errors = [ln for ln in log.read_text().splitlines() if "Error (" in ln]
    assert errors, log.read_text()
    last = errors[-1].split("): ", 1)[1]
    first = errors[0].split("): ", 1)[1]
    assert last in line and first in line
    # the container runs on, unchanged: same pid and start, not stopped or frozen, still killable
    time.sleep(0.2)
    after = ocish.state(c)
    assert after == before
    assert _proc_state(before["pid"]) == "S"
    for d in cgroup_dirs(c):
        if os.path.exists(f"{d}/freezer.state"):
            assert open(f"{d}/freezer.state").read().strip() == "THAWED"
    assert ocish("kill", c, "KILL").returncode == 0
    assert ocish("delete", "-f", c).returncode == 0
    reap_orphans()


def test_checkpoint_leave_running_and_work_path(ocish, make_bundle, tmp_path, criu_broken):
    b, c, before = _running(ocish, make_bundle)
    work = tmp_path / "work"
    line = one_line_error(ocish("checkpoint", "--leave-running", "--image-path",
                                str(tmp_path / "img"), "--work-path", str(work), c))
    assert line.endswith(f"; log: {work / 'dump.log'}") and (work / "dump.log").exists()
    assert ocish.state(c) == before


def test_checkpoint_needs_a_running_container_and_criu(ocish, make_bundle, tmp_path):
    b = make_bundle(["sleep", "300"])
    c = cid()
    assert ocish("create", "-b", str(b), c).returncode == 0
    line = one_line_error(ocish("checkpoint", "--image-path", str(tmp_path / "i"), c))
    assert line == "ocish: cannot checkpoint a container that is not started"
    assert one_line_error(ocish("checkpoint", "nope")) == "ocish: container does not exist"
    assert ocish("start", c).returncode == 0
    line = one_line_error(ocish("--criu", "/nonexistent/criu", "checkpoint", "--image-path",
                                str(tmp_path / "i"), c))
    assert line == 'ocish: criu binary "/nonexistent/criu" not found: install criu or pass --criu PATH'
    assert ocish.state(c)["status"] == "running"


def test_restore_failure_leaves_nothing(ocish, make_bundle, tmp_path, criu_broken):
    b = make_bundle(["sleep", "300"])
    images = tmp_path / "images"
    images.mkdir()
    c = cid()
    p = ocish("restore", "--image-path", str(images), "-b", str(b), "-d", c)
    line = one_line_error(p)
    assert line.startswith("ocish: restore failed: criu restore: ")
    assert line.endswith(f"; log: {images / 'restore.log'}")
    assert_nothing_left(ocish, c, b)
    with open("/proc/self/mountinfo") as f:
        assert "criu-root" not in f.read()
    line = one_line_error(ocish("restore", "--image-path", str(tmp_path / "none"), "-b", str(b), c))
    assert line == f"ocish: restore failed: image path {tmp_path / 'none'}: no such directory"


def test_criu_check_fails_here(criu_broken):
    """What could not be verified: criu cannot even start on this kernel (recorded for the note)."""
    assert "vdso" in criu_broken.stdout + criu_broken.stderr or criu_broken.returncode != 0
