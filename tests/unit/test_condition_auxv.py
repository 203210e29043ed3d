"""Breakpoint conditions (ocish/condition.py) and the auxv/exe readers, on this process."""
from __future__ import annotations

import ctypes
import os
import subprocess

import pytest

from ocish import condition, elf
from ocish.expect import ExpectSyntaxError
from ocish.inspect import Target, auxv, exe


def test_a_condition_joined_from_split_words_reads_back():
    words = ["type", "==", "bind,", "destination", "matches", "^/mnt,", "source", "==", "a b"]
    text = condition.join(words)
    assert text == 'type == bind, destination matches "^/mnt", source == "a b"'
    clauses = condition.parse(text)
    view = {"type": "bind", "destination": "/mnt/x", "source": "a b", "stage": "mounts"}
    assert condition.holds(clauses, view)
    assert not condition.holds(clauses, dict(view, type="proc"))
    assert not condition.holds(clauses, {"stage": "mounts"})  # fields the step lacks: false
    assert condition.names(clauses) == ["type", "destination", "source"]


def test_a_bad_condition_says_where():
    with pytest.raises(ExpectSyntaxError, match=r"^break \.\.\. if: after type, an operator"):
        condition.parse("type = bind")


def test_fields_of_a_mount_item_are_its_config_object():
    spec = {"mounts": [{"destination": "/proc", "type": "proc"}]}
    assert condition.fields("mounts", spec, "/mounts/0") == {
        "destination": "/proc", "type": "proc", "stage": "mounts", "item": "/mounts/0"}
    assert condition.fields("mounts", spec, "rootfs") == {"stage": "mounts", "item": "rootfs"}


def test_auxv_matches_getauxval():
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    entries = {e.name: e for e in auxv.read(Target(os.getpid()))}
    for name, key in (("AT_ENTRY", 9), ("AT_PHDR", 3), ("AT_PAGESZ", 6), ("AT_BASE", 7),
                      ("AT_UID", 11), ("AT_SECURE", 23)):
        assert entries[name].value == libc.getauxval(key), name
    execfn = ctypes.c_char_p(libc.getauxval(31)).value.decode()
    assert entries["AT_EXECFN"].text == execfn
    assert entries["AT_PAGESZ"].text == str(os.sysconf("SC_PAGE_SIZE"))


def test_exe_of_this_process():
    info = exe.read(Target(os.getpid()))
    assert info.path == os.readlink("/proc/self/exe")
    out = subprocess.run(["readelf", "-h", "-l", info.path], capture_output=True, text=True,
                         check=True).stdout
    entry = next(ln for ln in out.splitlines() if "Entry point address" in ln).split()[-1]
    assert info.e_entry == int(entry, 16) == elf.read(info.path).entry
    if "Requesting program interpreter" in out:
        assert info.interpreter in out and info.interpreter_base > 0
    assert info.path in [m.path for m in info.mapped]
    pie = elf.read(info.path).type == elf.ET_DYN  # loaded at a base; ET_EXEC where it says
    assert info.entry == (info.load_base + info.e_entry if pie else info.e_entry)
