"""Step 1 of diagnose: lint, i.e. the runtime's own validation of config.json and the schema.

One function, `findings(bundle)`, is all diagnose knows of lint: `ocish lint`'s findings for the
bundle (ocish/lint/checks.py), every one, not only the first that `create` would stop at. Lint's
host layer is diagnose's own preflight step (ocish/diagnose/preflight.py), which diagnose runs
next with its own severities ("it will not start", not "create refuses it"), so it is left out
here rather than reported twice.
"""
from __future__ import annotations

import os

from ocish.diagnose.model import Finding


def findings(bundle: str) -> list[Finding]:
    """Every problem lint finds in `<bundle>/config.json` without looking at the host or the
    rootfs: the runtime's validation (errors: `create` refuses them), the runtime-spec schema
    and what the runtime ignores (warnings). The bundle and its config.json must be readable
    (the caller checked)."""
    from ocish.lint.checks import lint
    return lint(bundle, host=False).findings


def json_error_lines(config: str, why: str) -> list[str]:
    """The lines of `config` around the one a JSON error names ("... at line 178 column 1:
    ..."), as evidence."""
    try:
        line = int(why.split(" at line ", 1)[1].split()[0])
        with open(config, errors="replace") as f:
            text = f.read().splitlines()
        return [f"{os.path.basename(config)} line {n}: {text[n - 1].rstrip()}"
                for n in range(max(1, line - 1), min(len(text), line) + 1)]
    except (IndexError, ValueError, OSError):
        return []
