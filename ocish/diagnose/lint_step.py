"""Step 1 of diagnose: lint, i.e. the runtime's own validation of config.json and the schema.

One function, `findings(bundle)`, is all diagnose knows of lint: `ocish lint`'s findings for the
bundle (ocish/lint/checks.py), every one, not only the first that `create` would stop at. Lint's
host layer is diagnose's own preflight step (ocish/diagnose/preflight.py), which diagnose runs
next with its own severities ("it will not start", not "create refuses it"), so it is left out
here rather than reported twice.
"""
from __future__ import annotations

from ocish.diagnose.model import Finding


def findings(bundle: str) -> list[Finding]:
    """Every problem lint finds in `<bundle>/config.json` without looking at the host or the
    rootfs: the runtime's validation (errors: `create` refuses them), the runtime-spec schema
    and what the runtime ignores (warnings). The bundle and its config.json must be readable
    (the caller checked)."""
    from ocish.lint.checks import lint
    # lint's notes that a hook's outcome shows only when it runs: diagnose runs it
    return [f for f in lint(bundle, host=False).findings if f.code != "hook-runs"]
