"""Running the image tools (skopeo, umoci, podman, docker) with one clear line per failure.

Each tool reports differently: skopeo logs `time=... level=fatal msg="..."` (logrus), umoci
`   ⨯ message` (apex/log's CLI handler), podman and docker `Error: message`, ctr `ctr: message`.
`failure()` takes
the last line of stderr and strips that dress, so the error reads as ours.
"""
from __future__ import annotations

import shutil
import subprocess

from runtime.errors import OcishError

# Where each tool comes from, for the "not installed" line.
PACKAGES = {"skopeo": "skopeo", "umoci": "umoci", "podman": "podman", "docker": "docker.io"}


def need(tool: str, why: str) -> str:
    """The path of `tool` on PATH; OcishError naming the Debian package when it is missing."""
    path = shutil.which(tool)
    if path is None:
        raise OcishError(f"{why} needs {tool}, which is not installed "
                         f"(apt-get install {PACKAGES.get(tool, tool)})")
    return path


def failure(stderr: str, returncode: int, tool: str = "") -> str:
    """The last meaningful line of a tool's stderr, without its logger's decoration (or
    "[TOOL ]exit status N" when it said nothing)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return f"{tool + ' ' if tool else ''}exit status {returncode}"
    line = lines[-1]
    if "level=fatal" in line or "level=error" in line:  # logrus: time=.. level=fatal msg=".."
        start = line.find('msg="')
        if start >= 0:
            msg = line[start + 5:]
            msg = msg[:msg.rfind('"')] if msg.endswith('"') else msg
            line = msg.replace('\\"', '"')
    line = line.lstrip("⨯•").strip()   # umoci's apex/log CLI handler
    if line.startswith("initializing source "):  # skopeo: the source is named by the caller
        line = line.split(": ", 1)[-1]
    for prefix in ("Error: ", "error: ", "ctr: ", "mount: "):  # podman, docker, ctr, mount(8)
        line = line.removeprefix(prefix)
    line = line.strip()
    return line[:1].lower() + line[1:]  # ours are lower-case: "Cannot connect ..." too


def run(argv: list[str], what: str, timeout: float | None = None, env: dict | None = None) -> str:
    """Run `argv`, return its stdout; OcishError "`what`: <the tool's own last line>" when it
    fails, cannot start or outlives `timeout` seconds (None: no limit, a copy takes as long as
    the image is big)."""
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise OcishError(f"{what}: {argv[0]} did not finish in {timeout:g}s") from None
    except OSError as e:
        raise OcishError(f"{what}: {argv[0]}: {(e.strerror or str(e)).lower()}") from None
    if res.returncode != 0:
        raise OcishError(f"{what}: {failure(res.stderr, res.returncode)}")
    return res.stdout
