"""ocish.bundle: `ocish bundle init` builds a runnable bundle (rootfs + config.json)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess

import pytest

from ocish import bundle
from ocish.bundle import init_bundle, main
from runtime.errors import OcishError

IS_ROOT = os.geteuid() == 0
CHROOT = shutil.which("chroot", path=bundle.HOST_PATH)
needs_chroot = pytest.mark.skipif(not IS_ROOT or CHROOT is None,
                                  reason="chroot needs root and the chroot binary")


def _config(d) -> dict:
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f)


def _chroot(rootfs, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROOT, str(rootfs), "/bin/sh", "-c", script], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/bin", "HOME": "/root"})


def _elf(klass: int = 2, interp: bytes | None = None, big: bool = False) -> bytes:
    """A minimal ELF image: header, one PT_LOAD, optionally a PT_INTERP."""
    end = ">" if big else "<"
    phdrs = [(1, b"")] + ([(3, interp + b"\0")] if interp is not None else [])
    if klass == 2:
        ehsize, phentsize = 64, 56
    else:
        ehsize, phentsize = 52, 32
    data_off = ehsize + phentsize * len(phdrs)
    ident = b"\x7fELF" + bytes([klass, 2 if big else 1, 1]) + bytes(9)
    if klass == 2:
        hdr = ident + struct.pack(end + "HHIQQQIHHHHHH", 2, 62, 1, 0x401000, ehsize, 0, 0,
                                  ehsize, phentsize, len(phdrs), 64, 0, 0)
    else:
        hdr = ident + struct.pack(end + "HHIIIIIHHHHHH", 2, 3, 1, 0x8049000, ehsize, 0, 0,
                                  ehsize, phentsize, len(phdrs), 40, 0, 0)
    table, payload = b"", b""
    for p_type, blob in phdrs:
        off = data_off + len(payload)
        if klass == 2:
            table += struct.pack(end + "IIQQQQQQ", p_type, 4, off, 0, 0, len(blob), len(blob), 1)
        else:
            table += struct.pack(end + "IIIIIIII", p_type, off, 0, 0, len(blob), len(blob), 4, 1)
        payload += blob
    assert len(hdr) == ehsize
    return hdr + table + payload


# --- the bundle -----------------------------------------------------------------------------------

def test_default_bundle_has_sh_and_config(tmp_path):
    d = tmp_path / "b"
    assert init_bundle(str(d), ["echo", "hi"]) == str(d)
    rootfs = d / "rootfs"
    sh = rootfs / "bin" / "sh"
    assert os.path.isfile(sh) and os.access(sh, os.X_OK)
    cfg = _config(d)
    assert cfg["root"]["path"] == "rootfs"
    assert cfg["process"]["args"] == ["echo", "hi"]
    assert cfg["process"]["terminal"] is False
    assert cfg["hostname"] == "ocish"
    assert cfg["ociVersion"]
    for name in ("dev", "proc", "sys", "tmp", "etc", "root", "run", "var", "bin"):
        assert (rootfs / name).is_dir(), name
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777
    etc = rootfs / "etc"
    assert (etc / "passwd").read_text().splitlines() == [
        "root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"]
    assert (etc / "group").read_text().splitlines() == ["root:x:0:", "tty:x:5:", "nogroup:x:65534:"]
    assert (etc / "hostname").read_text() == "ocish\n"
    assert "localhost" in (etc / "hosts").read_text()
    assert not [p for p in os.listdir(d) if p.startswith(".")], "staging files left behind"


def test_default_args_and_terminal(tmp_path):
    init_bundle(str(tmp_path / "b"), terminal=True)
    cfg = _config(tmp_path / "b")
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["terminal"] is True


def test_existing_empty_directory_is_used(tmp_path):
    assert init_bundle(str(tmp_path), ["true"]) == str(tmp_path)
    assert _config(tmp_path)["process"]["args"] == ["true"]


def test_refuses_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OcishError) as exc:
        init_bundle(str(tmp_path))
    msg = str(exc.value)
    assert str(tmp_path) in msg and "not empty" in msg and "\n" not in msg
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_refuses_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OcishError, match="not a directory"):
        init_bundle(str(f))


def test_force_replaces_rootfs_and_config_only(tmp_path):
    init_bundle(str(tmp_path), ["one"])
    (tmp_path / "rootfs" / "stale").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    init_bundle(str(tmp_path), ["two"], force=True)
    assert _config(tmp_path)["process"]["args"] == ["two"]
    assert not (tmp_path / "rootfs" / "stale").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert os.access(tmp_path / "rootfs" / "bin" / "sh", os.X_OK)


def test_force_never_removes_a_rootfs_with_mounts(tmp_path, monkeypatch):
    init_bundle(str(tmp_path), ["one"], busybox=None)
    (tmp_path / "rootfs" / "keep").write_text("x")
    monkeypatch.setattr(bundle, "_mount_points_under",
                        lambda p: [os.path.join(os.path.realpath(p), "proc")])
    with pytest.raises(OcishError, match="is a mount point"):
        init_bundle(str(tmp_path), ["two"], force=True, busybox=None)
    assert (tmp_path / "rootfs" / "keep").exists()
    assert _config(tmp_path)["process"]["args"] == ["one"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(rootfs):
        raise OcishError("no binaries")
    monkeypatch.setattr(bundle, "_install_host_binaries", boom)
    with pytest.raises(OcishError, match="no binaries"):
        init_bundle(str(tmp_path / "new"), busybox=None)
    assert not (tmp_path / "new").exists()


def test_rootless_spec(tmp_path):
    init_bundle(str(tmp_path), rootless=True)
    ns = [n["type"] for n in _config(tmp_path)["linux"]["namespaces"]]
    assert "user" in ns and "network" not in ns


def test_rejects_bad_args(tmp_path):
    with pytest.raises(OcishError):
        init_bundle(str(tmp_path), "sh -c true")   # type: ignore[arg-type]


# --- rootfs from host binaries (the fallback) -----------------------------------------------------

def test_fallback_copies_binaries_libraries_and_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "find_busybox", lambda path=bundle.BUSYBOX: None)
    init_bundle(str(tmp_path))   # "auto", but no static busybox
    rootfs = tmp_path / "rootfs"
    assert not (rootfs / "bin" / "busybox").exists()
    for name in ("sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "env", "mkdir"):
        p = rootfs / "bin" / name
        if shutil.which(name, path=bundle.HOST_PATH):
            assert p.is_file() and not p.is_symlink() and os.access(p, os.X_OK), name
            assert not os.stat(p).st_mode & (stat.S_ISUID | stat.S_ISGID)
    sh = os.path.realpath(shutil.which("sh", path=bundle.HOST_PATH))
    interp = bundle.elf_interpreter(sh)
    if interp:   # a dynamic sh: its loader and libraries sit at their host paths
        assert (rootfs / interp.lstrip("/")).is_file()
        for lib in bundle.shared_libraries(sh):
            assert (rootfs / lib.lstrip("/")).is_file(), lib


@needs_chroot
def test_fallback_rootfs_runs_under_chroot(tmp_path):
    init_bundle(str(tmp_path), busybox=None)
    res = _chroot(tmp_path / "rootfs", "echo ok")
    assert (res.returncode, res.stdout) == (0, "ok\n"), res.stderr
    res = _chroot(tmp_path / "rootfs", "ls / >/dev/null && cat /etc/hostname && id -u")
    assert (res.returncode, res.stdout) == (0, "ocish\n0\n"), res.stderr


# --- rootfs from busybox-static -------------------------------------------------------------------

def test_busybox_rootfs_links_every_applet(tmp_path, monkeypatch):
    fake = tmp_path / "busybox"
    fake.write_bytes(_elf())
    fake.chmod(0o755)
    monkeypatch.setattr(bundle, "busybox_applets", lambda bb: ["sh", "ls", "["])
    d = tmp_path / "b"
    init_bundle(str(d), busybox=str(fake))
    bindir = d / "rootfs" / "bin"
    assert (bindir / "busybox").read_bytes() == fake.read_bytes()
    assert not (bindir / "busybox").is_symlink()
    for applet in ("sh", "ls", "["):
        assert os.readlink(bindir / applet) == "busybox"


def test_busybox_must_be_static(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(_elf(interp=b"/lib64/ld-linux-x86-64.so.2"))
    fake.chmod(0o755)
    with pytest.raises(OcishError, match="not a statically linked"):
        init_bundle(str(tmp_path / "b"), busybox=str(fake))
    assert bundle.find_busybox(str(fake)) is None
    assert not (tmp_path / "b").exists()


def test_busybox_applets_filters_names(tmp_path):
    script = tmp_path / "bb"
    script.write_text("#!/bin/sh\nprintf '[\\nbusybox\\nls\\n../evil\\n\\nsh\\n'\n")
    script.chmod(0o755)
    assert bundle.busybox_applets(str(script)) == ["[", "ls", "sh"]
    failing = tmp_path / "bad"
    failing.write_text("#!/bin/sh\necho 'unknown option' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(OcishError, match="--list failed: unknown option"):
        bundle.busybox_applets(str(failing))


HOST_BUSYBOX = bundle.find_busybox()


@pytest.mark.skipif(HOST_BUSYBOX is None, reason="no static /bin/busybox (busybox-static)")
def test_host_busybox_rootfs(tmp_path):
    init_bundle(str(tmp_path))
    bindir = tmp_path / "rootfs" / "bin"
    assert (bindir / "busybox").is_file() and not (bindir / "busybox").is_symlink()
    assert os.readlink(bindir / "sh") == "busybox"
    names = set(os.listdir(bindir))
    assert set(bundle.busybox_applets(HOST_BUSYBOX)) <= names
    assert not (tmp_path / "rootfs" / "lib64").exists()


@needs_chroot
@pytest.mark.skipif(HOST_BUSYBOX is None, reason="no static /bin/busybox (busybox-static)")
def test_host_busybox_rootfs_runs_under_chroot(tmp_path):
    init_bundle(str(tmp_path))
    res = _chroot(tmp_path / "rootfs", "echo ok; ls /etc >/dev/null")
    assert (res.returncode, res.stdout) == (0, "ok\n"), res.stderr


# --- ELF and ldd ----------------------------------------------------------------------------------

@pytest.mark.parametrize("klass", [1, 2])
@pytest.mark.parametrize("big", [False, True])
def test_elf_interpreter(tmp_path, klass, big):
    static, dynamic = tmp_path / "static", tmp_path / "dynamic"
    static.write_bytes(_elf(klass, big=big))
    dynamic.write_bytes(_elf(klass, interp=b"/lib/ld-linux.so.2", big=big))
    assert bundle.elf_interpreter(str(static)) is None
    assert bundle.elf_interpreter(str(dynamic)) == "/lib/ld-linux.so.2"
    assert bundle.is_static_elf(str(static)) and not bundle.is_static_elf(str(dynamic))


def test_not_elf_is_not_static(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    truncated = tmp_path / "truncated"
    truncated.write_bytes(_elf()[:40])
    for p in (script, truncated, tmp_path / "missing"):
        assert not bundle.is_static_elf(str(p))
    with pytest.raises(ValueError):
        bundle.elf_interpreter(str(truncated))


def test_shared_libraries_of_host_sh():
    sh = os.path.realpath(shutil.which("sh", path=bundle.HOST_PATH))
    interp = bundle.elf_interpreter(sh)
    libs = bundle.shared_libraries(sh)
    assert all(os.path.isabs(p) for p in libs)
    if interp:
        assert libs and any(os.path.basename(p).startswith("libc.") for p in libs)
        assert any(os.path.realpath(p) == os.path.realpath(interp) for p in libs)
    else:
        assert libs == []


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_init_with_args_string(tmp_path, capsys):
    d = tmp_path / "b"
    assert main(["init", str(d), "--args", "sh -c 'echo hi'", "--terminal"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{d}\n" and err == ""
    cfg = _config(d)
    assert cfg["process"]["args"] == ["sh", "-c", "echo hi"]
    assert cfg["process"]["terminal"] is True


def test_cli_init_with_double_dash(tmp_path, capsys):
    d = tmp_path / "b"
    assert main(["init", str(d), "--force", "--", "ls", "-la", "--force"]) == 0
    assert _config(d)["process"]["args"] == ["ls", "-la", "--force"]


def test_cli_default_command(tmp_path, capsys):
    assert main(["init", str(tmp_path / "b")]) == 0
    assert _config(tmp_path / "b")["process"]["args"] == ["sh"]


def _one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ocish: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_non_empty_directory(tmp_path, capsys):
    (tmp_path / "x").write_text("x")
    assert main(["init", str(tmp_path)]) == 1
    assert str(tmp_path) in _one_line_error(capsys)
    assert main(["init", str(tmp_path), "--force"]) == 0


def test_cli_os_error(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["init", str(tmp_path / "f" / "sub")]) == 1
    assert "not a directory" in _one_line_error(capsys)


@pytest.mark.parametrize("argv", [
    ["init", "DIR", "--args", "ls", "--", "ls"],
    ["init", "DIR", "--args", "sh -c 'unterminated"],
    ["init", "DIR", "--bogus"],
    ["init"],
    ["frobnicate"],
    [],
])
def test_cli_usage_errors(tmp_path, capsys, argv):
    argv = [str(tmp_path / "b") if a == "DIR" else a for a in argv]
    assert main(argv) == 1
    _one_line_error(capsys)
    assert not (tmp_path / "b").exists()


def test_cli_unknown_argument_names_the_subcommand(tmp_path, capsys):
    assert main(["init", str(tmp_path / "b"), "--json"]) == 1
    assert _one_line_error(capsys) == ("ocish: bundle init: unknown argument --json (it takes "
                                       "DIR, --image, --args, --force, --terminal, --rootless; a command "
                                       "after --)\n")
    assert not (tmp_path / "b").exists()


def test_cli_help(capsys):
    assert main(["init", "--help"]) == 0
    assert "--terminal" in capsys.readouterr().out
