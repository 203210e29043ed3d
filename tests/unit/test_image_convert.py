"""ocish.image.convert: Config.User resolved as runc's libcontainer/user.GetExecUser does, and
the image configuration carried into config.json (image-spec conversion.md); ocish.image.tools'
reading of the tools' error lines."""
from __future__ import annotations

import pytest

from ocish.image import convert, tools
from ocish.image.ref import parse
from runtime.defaults import default_spec
from runtime.errors import OcishError

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1234:1234:app:/home/app:/bin/sh\n"
          "# a comment\n"
          "short:x:1\n"
          "dup:x:1234:99:second entry for uid 1234:/:/bin/sh\n")
GROUP = "root:x:0:\napp:x:1234:\nextra:x:2345:other,app\nmore:x:3456:app\nnone:x:4567:other\n"


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return str(tmp_path)


@pytest.mark.parametrize("spec,want", [
    ("", (0, 0, [])),                           # no User: root (root's groups: none listed)
    ("app", (1234, 1234, [2345, 3456])),         # name: uid, gid, the groups listing it
    ("1234", (1234, 1234, [2345, 3456])),        # numeric, found: first entry with that uid
    ("4000", (4000, 0, [])),                     # numeric, not found: taken as is, gid 0
    ("app:extra", (1234, 2345, [])),             # a group given: no supplementary groups
    ("app:77", (1234, 77, [])),                  # numeric group not found: taken as is
    ("4000:4567", (4000, 4567, [])),
    (":extra", (0, 2345, [])),
])
def test_exec_user_as_runc(rootfs, spec, want):
    assert convert.exec_user(spec, rootfs) == want


@pytest.mark.parametrize("spec,error", [
    ("ghost", "image user 'ghost': no user ghost in the image's /etc/passwd"),
    ("app:ghosts", "image user 'app:ghosts': no group ghosts in the image's /etc/group"),
    ("4294967296", "image user: uid 4294967296 is out of range (0 to 2147483647)"),
])
def test_exec_user_errors(rootfs, spec, error):
    with pytest.raises(OcishError) as e:
        convert.exec_user(spec, rootfs)
    assert str(e.value) == error


def test_passwd_symlink_resolved_inside_the_rootfs(tmp_path):
    """/etc/passwd -> /etc/real in the image means ROOTFS/etc/real, never the host's file."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/real").write_text("web:x:77:88::/:/bin/sh\n")
    (tmp_path / "etc/passwd").symlink_to("/etc/real")
    assert convert.exec_user("web", str(tmp_path)) == (77, 88, [])
    with pytest.raises(OcishError, match="no user root in the image's /etc/passwd"):
        convert.exec_user("root", str(tmp_path))  # the host's root entry is not read


def test_no_passwd_numeric_only(tmp_path):
    assert convert.exec_user("5:6", str(tmp_path)) == (5, 6, [])
    with pytest.raises(OcishError, match="the image has no /etc/passwd to find app in"):
        convert.exec_user("app", str(tmp_path))


def test_to_spec_fields(rootfs):
    image = {"os": "linux", "architecture": "amd64", "author": "me",
             "config": {"Entrypoint": ["/entry"], "Cmd": ["a", "b"], "Env": ["A=1", "PATH=/x"],
                        "WorkingDir": "srv", "User": "app", "StopSignal": "SIGINT",
                        "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
                        "Labels": {"org.opencontainers.image.author": "label wins", "k": "v"}}}
    spec = convert.to_spec(image, rootfs, default_spec(), terminal=True)
    p = spec["process"]
    assert p["args"] == ["/entry", "a", "b"]
    assert p["env"] == ["A=1", "PATH=/x", "TERM=xterm"]  # the image's PATH kept
    assert p["cwd"] == "/srv" and p["terminal"] is True
    assert p["user"] == {"uid": 1234, "gid": 1234, "additionalGids": [2345, 3456]}
    assert spec["annotations"] == {
        "org.opencontainers.image.os": "linux", "org.opencontainers.image.architecture": "amd64",
        "org.opencontainers.image.author": "label wins", "k": "v",
        "org.opencontainers.image.stopSignal": "SIGINT",
        "org.opencontainers.image.exposedPorts": "53/udp,80/tcp"}
    assert spec["mounts"][-1] == {"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["rw", "nosuid", "nodev", "noexec", "relatime"]}
    spec = convert.to_spec({"config": {"Cmd": ["sh"]}}, rootfs, default_spec(), ["true"])
    assert spec["process"]["args"] == ["true"] and spec["process"]["cwd"] == "/"
    assert spec["process"]["env"] == [f"PATH={convert_default_path()}"]  # no TERM without -t


def convert_default_path() -> str:
    return next(e for e in default_spec()["process"]["env"] if e.startswith("PATH="))[5:]


@pytest.mark.parametrize("image,error", [
    ({"config": {}}, "image has no entrypoint and no cmd: give the command after --"),
    ({"os": "windows", "config": {"Cmd": ["x"]}}, "image os is windows: only linux images run "
                                                  "here"),
    ({"config": {"Cmd": "sh"}}, "image config Cmd: not a list of strings"),
    ({"config": {"Cmd": ["sh"], "Env": ["NOEQUALS"]}},
     "image config Env: 'NOEQUALS' is not NAME=value"),
])
def test_to_spec_errors(rootfs, image, error):
    with pytest.raises(OcishError) as e:
        convert.to_spec(image, rootfs, default_spec())
    assert str(e.value) == error


@pytest.mark.parametrize("stderr,line", [
    ('time="2026-11-30T06:09:24Z" level=fatal msg="initializing source oci:l:x: no descriptor '
     'found for reference \\"x\\""\n', 'no descriptor found for reference "x"'),
    ("   • unpacking rootfs ...\n   ⨯ tag is not found: nosuch \n", "tag is not found: nosuch"),
    ("Error: inspecting object: x: image not known\n", "inspecting object: x: image not known"),
    ("", "exit status 3"),
])
def test_tool_failure_lines(stderr, line):
    assert tools.failure(stderr, 3) == line


@pytest.mark.parametrize("ref,want", [
    ("podman:web", ("podman", "web")), ("containers-storage:web", ("podman", "web")),
    ("docker:web:1.0", ("docker", "web:1.0")), ("web:1.0", ("", "web:1.0")),
    ("localhost/web", ("", "localhost/web")),
])
def test_store_references(ref, want):
    assert parse(ref) == want
