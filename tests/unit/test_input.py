"""Malformed and extreme input, one parser at a time: never an OverflowError, a traceback or a
message on more than one line (issue 8, item 6). tests/integration/test_malformed.py runs the
same classes through the command line."""
from __future__ import annotations

import os
import resource

import pytest

from runtime import jsonfast
from runtime import spec as specmod
from runtime.cliparse import uint
from runtime.commands import parse_flag, ram_in_bytes
from runtime.defaults import default_spec
from runtime.errors import OcishError, SpecError, StageError, printable
from runtime.events import parse_duration
from runtime.linux import sig
from runtime.linux.syscalls import _rlim


@pytest.mark.parametrize("text,shown", [
    ("plain", "plain"), ("a\nb", "a\\nb"), ("a\r\nb", "a\\r\\nb"), ("\x1b[31m", "\\x1b[31m"),
    ("\x00", "\\x00"), ("\x7f", "\\x7f"), ("\u0085", "\\x85"), ("\u2028", "\\u2028"),
    ("\ud800", "\\ud800"), ("é ü ✓", "é ü ✓"), ("tab\t", "tab\\t")])
def test_printable_keeps_one_line(text, shown):
    assert printable(text) == shown


def test_stage_errors_render_on_one_line():
    err = StageError("exec", "exec", '"a\nb"', 2, "/process/args/0")
    assert "\n" not in str(err) and '"a\\nb"' in str(err)


@pytest.mark.parametrize("value,raw", [(0, 0), (2**63 - 1, 2**63 - 1), (2**63, -2**63),
                                       (2**64 - 2, -2), (2**64 - 1, -1)])
def test_rlimits_are_u64_for_the_kernel(value, raw):
    assert _rlim(value) == raw
    assert resource.RLIM_INFINITY == _rlim(2**64 - 1)


@pytest.mark.parametrize("text,number", [("9", 9), ("KILL", 9), ("sigterm", 15), ("0", 0),
                                         (str(sig.NSIG - 1), sig.NSIG - 1)])
def test_signals(text, number):
    assert sig.number(text) == number


@pytest.mark.parametrize("text", ["99999999999999999999", str(sig.NSIG), "٣", "-1", "SIG_DFL",
                                  "NOPE", ""])
def test_not_signals(text):
    with pytest.raises(KeyError):
        sig.number(text)


@pytest.mark.parametrize("text", ["-1", "٣", "1_0", " 5", "", "0x10"])
def test_uint_flags_are_ascii_digits(text):
    with pytest.raises(ValueError):
        uint(text)


def test_durations_fit_go_int64_nanoseconds():
    assert parse_duration("292y".replace("y", "h")) == 292 * 3600
    with pytest.raises(OcishError, match="invalid duration"):
        parse_duration("9" * 400 + "s")
    with pytest.raises(OcishError, match="invalid duration"):
        parse_duration("9300000000s")


def test_ram_sizes_fit_int64():
    assert ram_in_bytes("8191p") == 8191 * 1024**5
    for text in ("8192p", "9" * 400, "1e5", "٣"):
        with pytest.raises(ValueError, match="invalid size"):
            ram_in_bytes(text)


@pytest.mark.parametrize("flag,text", [("pids-limit", "٣"), ("cpu-share", "-5"),
                                       ("cpu-quota", "1_000"), ("cpu-period", " 5")])
def test_update_flags_take_go_integers(flag, text):
    with pytest.raises(OcishError) as exc:
        parse_flag(flag, text)
    assert str(exc.value).startswith(f"invalid value for {flag}: ")


# -- config.json: what it is, how big, what its numbers are -------------------------------------

def _bundle(tmp_path, spec=None):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    if spec is not None:
        (tmp_path / "config.json").write_text(jsonfast.dumps(spec))
    return str(tmp_path)


def _sparse(path: str, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


@pytest.mark.parametrize("make,why", [
    (lambda p: os.mkfifo(p), "not a regular file (a fifo)"),
    (lambda p: os.mkdir(p), "not a regular file (a directory)"),
    (lambda p: os.symlink("/dev/zero", p), "not a regular file (a character device)"),
    (lambda p: _sparse(p, specmod.MAX_CONFIG + 1),
     f"larger than {specmod.MAX_CONFIG} bytes ({specmod.MAX_CONFIG + 1})"),
])
def test_config_json_must_be_a_regular_file_of_sane_size(tmp_path, make, why):
    b = _bundle(tmp_path)
    make(os.path.join(b, "config.json"))
    with pytest.raises(OcishError) as exc:
        specmod.load(b)  # returns at once: a FIFO does not block, /dev/zero is not read
    assert str(exc.value) == f'bundle "{b}": config.json: {why}'


@pytest.mark.parametrize("key,value,ok", [
    ("major", 4095, True), ("minor", 2**20 - 1, True), ("major", 4096, False),
    ("minor", 2**20, False), ("major", 2**31, False), ("minor", 2**63 - 1, False)])
def test_device_numbers_are_the_kernels(tmp_path, key, value, ok):
    spec = default_spec()
    spec["linux"]["devices"] = [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1}]
    spec["linux"]["devices"][0][key] = value
    b = _bundle(tmp_path, spec)
    if ok:
        specmod.load(b)
        return
    with pytest.raises(SpecError) as exc:
        specmod.load(b)
    assert exc.value.pointer == f"/linux/devices/0/{key}"
    assert "a Linux device" in str(exc.value)


def test_valid_extremes_are_accepted(tmp_path):
    """What runc takes (RLIM_INFINITY, an int64 hook timeout, int64 memory, the kernel's
    largest cpu shares: spec.py refuses more, as runc's read-back does) passes validation; the
    kernel may still refuse some, with a clear StageError."""
    spec = default_spec()
    spec["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]
    spec["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 2**63 - 1}]}
    spec["linux"]["resources"]["memory"] = {"limit": 2**63 - 1}
    spec["linux"]["resources"]["cpu"] = {"shares": specmod.CPU_SHARES_MAX}
    specmod.load(_bundle(tmp_path, spec))
    spec["linux"]["resources"]["cpu"] = {"shares": 2**64 - 1}
    with pytest.raises(SpecError, match="/linux/resources/cpu/shares: cpu shares must be from"):
        specmod.load(_bundle(tmp_path, spec))


def test_hook_argv0_must_not_be_empty(tmp_path):
    spec = default_spec()
    spec["hooks"] = {"poststop": [{"path": "/bin/true", "args": [""]}]}
    with pytest.raises(SpecError) as exc:
        specmod.load(_bundle(tmp_path, spec))
    assert exc.value.pointer == "/hooks/poststop/0/args/0"


# -- --process and -r documents ------------------------------------------------------------------

@pytest.mark.parametrize("content,why", [
    (b"{", "invalid json"), (b"[1", "invalid json"), (b"", "invalid json"),
    (b"[" * 100000, "nested too deeply"), (b"\xff{}", "not valid utf-8 at byte 0"),
    (b"[]", "the process must be a JSON object")])
def test_read_object_errors(tmp_path, content, why):
    f = tmp_path / "p.json"
    f.write_bytes(content)
    with pytest.raises(ValueError) as exc:
        jsonfast.read_object(str(f), "the process")
    assert str(exc.value).startswith(f"{f}: ") and why in str(exc.value)
    assert "\n" not in str(exc.value)


def test_read_object_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonfast, "MAX_OBJECT", 10)
    f = tmp_path / "p.json"
    f.write_text('{"a": "' + "x" * 100 + '"}')
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        jsonfast.read_object(str(f), "the process")
