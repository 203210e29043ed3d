"""Step 1 of diagnose: lint, i.e. the runtime's own validation of config.json.

One function, `findings(bundle)`, is all diagnose knows of lint. Today it calls the validator that
`create` runs (`runtime.spec.load`), which stops at the first problem, so it returns one finding
at most; `ocish lint`'s collect-all mode of runtime/spec.py replaces the body, not the signature.
"""
from __future__ import annotations

import json
import os

from ocish.diagnose import explain
from ocish.diagnose.model import ERROR, LINT, Finding, Fix
from runtime import spec as specmod
from runtime.errors import OcishError, SpecError


def findings(bundle: str) -> list[Finding]:
    """Every problem the runtime's validation finds in `<bundle>/config.json` (today: the first),
    as findings with the JSON pointer and a fix. The bundle and its config.json must be readable
    (the caller checked)."""
    try:
        specmod.load(bundle)
    except SpecError as e:
        return [explain.spec_finding(e.pointer, e.message, _spec(bundle))]
    except OcishError as e:  # not JSON, not UTF-8: config.json as a whole
        why = str(e).split("config.json: ", 1)[-1]
        return [Finding("config-json", ERROR, LINT, "config.json cannot be parsed", why,
                        "validate", "parse", 0, "", _where(bundle, why),
                        Fix("make config.json valid JSON (python3 -m json.tool "
                            f"{os.path.join(bundle, 'config.json')} shows where it breaks)"))]
    return []


def _where(bundle: str, why: str) -> list[str]:
    """The line a JSON error names ("... at line 178 column 1: ..."), as evidence."""
    try:
        line = int(why.split(" at line ", 1)[1].split()[0])
        with open(os.path.join(bundle, "config.json"), errors="replace") as f:
            text = f.read().splitlines()
        return [f"config.json line {n}: {text[n - 1].rstrip()}"
                for n in range(max(1, line - 1), min(len(text), line) + 1)]
    except (IndexError, ValueError, OSError):
        return []


def _spec(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            doc = json.loads(f.read().decode("utf-8-sig"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
