"""Which mount option did the kernel refuse? mount(2) answers EINVAL for the whole data string.

A forked child enters a private mount namespace (whatever it mounts dies with it) and mounts the
same filesystem type on a scratch directory once with no data options, then once per data option
alone; the first option refused with EINVAL where the bare mount worked is the culprit. Only
filesystems without a backing device are probed (tmpfs, mqueue, devpts, proc ...): mounting a real
device again, even privately, is not something a diagnosis should do.
"""
from __future__ import annotations

import json
import os
import tempfile

from runtime.linux import syscalls as S
from runtime.stages import mountopts

MNT_DETACH = 2


def bad_mount_option(m: dict) -> tuple[str | None, str]:
    """(the option refused, or None; what was tried, in words) for config.json mount `m`."""
    kind = m.get("type")
    options = [o for o in m.get("options") or [] if isinstance(o, str)]
    data = mountopts.parse(options).data
    if not isinstance(kind, str) or not data:
        return None, "no data options to try one by one"
    if not _nodev(kind):
        return None, f"{kind} needs a device: not probed"
    source = m.get("source") if isinstance(m.get("source"), str) else kind
    scratch = tempfile.mkdtemp(prefix="ocish-diagnose-probe-")
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                os.close(r)
                S.unshare(S.CLONE_NEWNS)
                S.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)
                results = []
                for opt in [""] + data:
                    try:
                        S.mount(source, scratch, kind, 0, opt or None)
                        S.umount2(scratch, MNT_DETACH)
                        results.append((opt, 0))
                    except OSError as e:
                        results.append((opt, e.errno or 0))
                os.write(w, json.dumps(results).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        w = -1
        raw = b""
        while chunk := os.read(r, 65536):
            raw += chunk
        os.waitpid(pid, 0)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        os.rmdir(scratch)
    try:
        results = json.loads(raw or b"[]")
    except ValueError:
        return None, "the probe failed"
    if not results or results[0][1] != 0:
        return None, f"{kind} cannot be mounted here even without options"
    words = ", ".join(f"{o}: {'ok' if e == 0 else os.strerror(e).lower()}" for o, e in results[1:])
    bad = next((o for o, e in results[1:] if e), None)
    return bad, f"mount -t {kind} with each data option alone: {words}"


def _nodev(kind: str) -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split() == ["nodev", kind] for line in f)
    except OSError:
        return False
