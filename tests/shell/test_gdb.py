"""gdb habits: next, until, tbreak, disable/enable, ignore, info stages, command prefixes and
"did you mean", help with aliases and examples. (The empty line that repeats the last command
is a terminal habit: test_terminal.py.)"""
from __future__ import annotations

import json

from tests.conftest import needs_root

pytestmark = needs_root


def _ran(out: str) -> list[str]:
    return [ln[4:].split(" (")[0] for ln in out.splitlines() if ln.startswith("ran ")]


def _mount_items(s) -> list[str]:
    return [it["item"] for r in s.json("stages --json") if r["name"] == "mounts" for it in r["items"]]


def test_next_runs_the_rest_of_the_stage(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert _ran(s.cmd("next")) == ["cgroup"]  # before a stage's first item: all of it
    s.cmd("until mounts")
    items = _mount_items(s)
    out = s.cmd("step 2")  # into the middle of mounts
    assert _ran(out) == [f"mounts {i}" for i in items[:2]]
    out = s.cmd("n")
    assert _ran(out) == [f"mounts {i}" for i in items[2:]]  # only the items left
    assert out.splitlines()[-1].startswith("next: limits -- ")
    # the pipeline agrees: mounts done, hooks next
    rows = {r["name"]: r for r in s.json("info stages --json")}
    assert rows["mounts"]["status"] == "done" and rows["limits"]["status"] == "next"


def test_until_and_tbreak(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    out = s.cmd("until mounts /mounts/2")
    assert out.splitlines()[-1].startswith("next: mounts /mounts/2 -- ")
    assert "ran mounts /mounts/1" in out
    assert "is not ahead" in s.cmd("until cgroup")
    assert "no stage 'nope'" in s.cmd("until nope")
    # a typo of a stage gets gdb's "did you mean", as a command does
    assert s.cmd("until mount").startswith("error: no stage 'mount': did you mean mounts? "
                                           "(stages are cgroup, ")
    assert "no stage 'capz': did you mean caps? " in s.cmd("break capz")
    assert "no stage 'pivt': did you mean pivot? " in s.cmd("explain pivt")
    assert s.json("info breakpoints --json") == []  # until leaves no breakpoint behind
    assert s.cmd("tbreak pivot") == "temporary breakpoint 1 before pivot (first step)\n"
    out = s.cmd("continue")
    assert out.splitlines()[-1].startswith("temporary breakpoint 1, next: pivot -- ")
    assert s.cmd("info breakpoints") == "no breakpoints\n"  # deleted when it stopped the run


def test_disable_enable_and_ignore(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break mounts /mounts/1")
    s.cmd("break mounts /mounts/3")
    assert s.cmd("disable 1") == "breakpoint 1 disabled\n"
    out = s.cmd("continue")
    assert "breakpoint 2, next: mounts /mounts/3" in out  # the disabled one did not stop it
    assert [b["enabled"] for b in s.json("info b --json")] == [False, True]
    s.cmd("restart")
    assert s.cmd("enable") == "breakpoint 1 enabled\nbreakpoint 2 enabled\n"
    assert s.cmd("ignore 1 1") == "will ignore next 1 crossings of breakpoint 1\n"
    out = s.cmd("c")
    assert "breakpoint 2, next: mounts /mounts/3" in out and "ran mounts /mounts/1" in out
    bp = s.json("info b --json")[0]
    assert (bp["hits"], bp["ignore"]) == (1, 0)  # the ignored crossing counts as a hit (gdb)
    s.cmd("restart")
    assert "breakpoint 1, next: mounts /mounts/1" in s.cmd("c")
    assert "no breakpoint number 9" in s.cmd("disable 9")
    assert "usage: ignore N COUNT" in s.cmd("ignore 1")


def test_prefixes_and_typos(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert s.cmd("sta") == "error: ambiguous command 'sta': stages, start, state\n"
    assert s.cmd("contnue") == ("error: unknown command 'contnue': did you mean continue or "
                                "containers? (`help` lists the commands)\n")
    assert s.cmd("stag") == s.cmd("stages")  # an unambiguous prefix
    assert _ran(s.cmd("cont")) and s.cmd("ps")  # cont is continue's alias
    assert json.loads(s.cmd("insp pr --json"))["pid"] > 0  # command and topic prefixes
    assert "ambiguous topic 'c': cgroup, caps" in s.cmd("inspect c")
    assert "did you mean mounts?" in s.cmd("inspect moutns")


def test_help_lists_aliases_and_shows_examples(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    out = s.cmd("help")
    assert all(len(ln) <= 80 for ln in out.splitlines())  # no terminal: 80 columns
    assert "(n) run the rest" in out and "(c, cont) run steps" in out and "(x) the container" in out
    out = s.cmd("help n")
    assert out.startswith("next   (aliases: n)")
    assert "examples:\n  next\n  n" in out
    assert "examples:\n  break pivot\n  break mounts /mounts/2" in s.cmd("help break")
    entry = s.json("help --json until")
    assert entry["aliases"] == ["u"] and "until pivot" in entry["examples"]


def test_counts_below_one_are_refused(session, make_bundle):
    """gdb: `step 0` is no step; ocish refuses counts below 1 (and negative ignore counts)
    with the range, and runs nothing."""
    s = session(make_bundle(["sleep", "100"]))
    assert s.cmd("step 0") == "error: the step count must be a positive number, not 0\n"
    assert s.cmd("step -1") == "error: the step count must be a positive number, not -1\n"
    assert s.cmd("step x") == "error: the step count must be a number, not 'x'\n"
    assert s.json("stages --json")[0]["status"] == "next"  # nothing ran
    s.cmd("break mounts")
    assert s.cmd("ignore 1 -1") == "error: the ignore count must be 0 or more, not -1\n"
    assert s.cmd("catch exec 0").startswith("error: the call count must be a positive number")
    assert s.cmd("ignore 1 0") == "will stop next time breakpoint 1 is reached\n"


def test_info_breakpoints_shows_gdbs_columns(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break mount /proc")
    s.cmd("tbreak caps")
    s.cmd("break mounts")
    s.cmd("disable 3")
    s.cmd("ignore 1 2")
    assert s.cmd("info breakpoints").splitlines() == [
        "Num  Type        Disp  Enb  What",
        "1    breakpoint  keep  y    before mounts /mounts/0  (as typed: mount /proc)",
        "\tWill ignore next 2 crossings of breakpoint.",
        "2    breakpoint  del   y    before caps (first step)",
        "3    breakpoint  keep  n    before mounts (first step)"]
    s.cmd("continue")  # crosses 1 (ignored) and stops at 2, which is deleted
    assert s.cmd("info breakpoints").splitlines() == [
        "Num  Type        Disp  Enb  What",
        "1    breakpoint  keep  y    before mounts /mounts/0  (as typed: mount /proc)",
        "\tbreakpoint already hit 1 time",
        "\tWill ignore next 1 crossings of breakpoint.",
        "3    breakpoint  keep  n    before mounts (first step)"]
