"""`seccomp check` and `seccomp explain` in a debugging session: from config.json's profile
before the filter is loaded, from the kernel's copy once stage bounding loaded it, confirmed by
/proc/PID/status and by the calls made inside the container."""
from __future__ import annotations

from tests.conftest import needs_root
from tests.integration.test_seccomp_answers import PROFILE
from tests.shell.conftest import status_field

pytestmark = needs_root


def _profile(spec):
    spec["process"]["noNewPrivileges"] = False   # loaded in stage bounding, not at exec
    spec["linux"]["seccomp"] = PROFILE


def test_check_and_explain_through_setup(session, make_bundle):
    s = session(make_bundle(["sleep", "100"], mutate=_profile))
    pid = s.json("inspect proc --json")["pid"]
    # before stage bounding: no filter in the kernel; the answer is config.json's, compiled
    assert status_field(pid, "Seccomp") == "0"
    before = s.json("seccomp check mkdir --json")
    assert (before["mode"], before["action"], before["errno_name"]) == \
        ("profile", "SCMP_ACT_ERRNO(1)", "EPERM")
    assert "has no filter loaded yet" in before["source_note"]
    s.cmd("until user")
    pid = s.json("inspect proc --json")["pid"]   # the init forked into the new pid namespace
    # stage bounding loaded it: now the kernel's copy answers, and it is the profile's
    assert (status_field(pid, "Seccomp"), status_field(pid, "Seccomp_filters")) == ("2", "1")
    after = s.json("seccomp check mkdir --json")
    assert (after["mode"], after["filters"], after["matches_config"]) == ("filter", 1, True)
    assert [r["path"] for r in after["runs"]] == [r["path"] for r in before["runs"]]
    assert "setup complete" in s.cmd("continue")
    s.cmd("start")
    out = s.cmd("exec mkdir /dev/shm/d")
    assert "Operation not permitted" in out and "exit status 1" in out
    text = s.cmd("seccomp check personality PER_LINUX32")
    assert "action:  SCMP_ACT_ERRNO(22)  (kernel: SECCOMP_RET_ERRNO | 22)" in text
    assert "errno:   22 EINVAL" in text and "rule:    /linux/seccomp/syscalls/1" in text
    assert "; A = 0x8 (args[0])" in text   # the path shows the argument it compared
    assert "Invalid argument" in s.cmd("exec linux32 true")
    assert "action:  SCMP_ACT_ALLOW" in s.cmd("seccomp check personality 0")
    assert s.cmd("exec linux64 true").strip().endswith("exit status 0")
    text = s.cmd("seccomp explain")
    assert "  mkdir mkdirat  [/linux/seccomp/syscalls/0]" in text
    assert "  sethostname if args[1] > 5  [/linux/seccomp/syscalls/2]" in text
    assert "flagged" not in text
    assert s.cmd("seccomp check nosuch").startswith(
        "error: unknown syscall 'nosuch' (libseccomp")
    s.quit()
