"""The debugger session's container as a verify subject (the shell's `verify [BUNDLE]`)."""
from __future__ import annotations

import os

from ocish.verify.subject import Subject, config
from runtime import state
from runtime.errors import OcishError


def subject_of(dbg, bundle: str = "") -> Subject:
    """The container the session holds, once created (its setup done), compared with the
    config it was created with, or `bundle`'s. Raises OcishError when there is nothing to
    verify yet or any more."""
    if dbg.in_setup:
        raise OcishError(f"container {dbg.cid} is still being set up (next: "
                         f"{dbg.position()}): verify compares a created or running container; "
                         "`continue` finishes the setup")
    if dbg.st is None:
        raise dbg.nothing_loaded()
    status = dbg.status()
    if status not in ("created", "running", "paused"):
        raise OcishError(f"container {dbg.cid} is {status}: nothing to verify")
    t = dbg.target()
    if bundle:
        spec, path = config(bundle)
        bundle = os.path.abspath(bundle)
    else:
        spec = dbg.config()
        path = os.path.join(state.container_dir(dbg.root, dbg.cid), state.CONFIG_COPY)
        bundle = dbg.bundle
    return Subject(t.pid, spec, path, bundle, dbg.cid, "ocish", status, dbg.st.get("start_time"),
                   dict(t.cgroup_paths))
