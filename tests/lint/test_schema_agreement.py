"""runtime/spec.py against the official runtime-spec 1.2 JSON schema, over a corpus of configs.

The corpus: a config that sets every member the schema knows (`rich_config`), 800-odd copies of
it each breaking one schema rule, the runtime-spec's own schema test configs, and the broken
configs of tests/unit/test_spec.py, tests/integration/test_broken_configs.py and
tests/diagnose/corpus.py. On each, every problem spec.py finds must be one the schema finds at the
same item (or inside it), or one of ocish/lint/schemacheck.py's documented STRICTER rules; every
problem the schema finds must be one spec.py finds, or a documented LOOSER one. Pure: no root.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocish.lint import schemacheck as sc
from runtime import spec as specmod
from runtime.defaults import default_spec
from tests.lint.schema_corpus import (DIFFERENCES, OTHER_PLATFORMS, mutations, present_paths, rich_config,
                                      schema_paths)

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("bundle")
    (d / "rootfs").mkdir()
    return str(d)


def _corpus(bundle_dir: str) -> list[tuple[str, object]]:
    from tests.diagnose.corpus import CASES as DIAGNOSE, HEALTHY, Env
    from tests.integration.test_broken_configs import CASES as BROKEN_CONFIGS
    from tests.unit.test_spec import BROKEN
    out: list[tuple[str, object]] = [("rich", rich_config()), ("default", default_spec()),
                                     ("default rootless", default_spec(rootless=True))]
    out += [(f"mutation {name}", doc) for name, _, doc in mutations(rich_config())]
    out += [(f"difference {name}", doc) for name, doc in DIFFERENCES]
    for platform in OTHER_PLATFORMS:
        out.append((f"{platform} section", dict(default_spec(), **{platform: "not an object"})))
    for kind in ("good", "bad"):
        for f in sorted((HERE / "upstream" / kind).glob("*.json")):
            try:
                out.append((f"upstream {kind}/{f.name}", json.loads(f.read_text())))
            except ValueError:
                pass  # not JSON: no schema to check
    for name, mutate, _, _ in BROKEN:
        s = default_spec()
        mutate(s)
        out.append((f"test_spec {name}", s))
    for name, mutate, _ in BROKEN_CONFIGS:
        s = default_spec()
        mutate(s)
        out.append((f"test_broken_configs {name}", s))
    host = Path(bundle_dir) / "host"
    host.mkdir(exist_ok=True)
    for case in DIAGNOSE + HEALTHY:
        if case.mutate is None or "podman" in case.name:  # podman's moves the rootfs away
            continue
        s = default_spec()
        case.mutate(s, Env(host, Path(bundle_dir)))
        s.pop("__broken__", None)
        out.append((f"diagnose {case.name}", s))
    return out


def test_rich_config_sets_every_member_of_the_schema():
    assert sorted(schema_paths() - present_paths(rich_config())) == []


def test_rich_config_is_valid_for_both(bundle):
    doc = rich_config()
    assert sc.errors(doc) == []
    assert specmod.collect(doc, bundle) == []


def test_every_mutation_breaks_the_schema():
    unbroken = [name for name, _, doc in mutations(rich_config()) if not sc.errors(doc)]
    assert unbroken == []
    assert len(mutations(rich_config())) > 700


@pytest.fixture(scope="module")
def comparison(bundle) -> dict:
    """Both validators over the corpus: what disagrees without a documented reason, and which
    documented reasons were needed."""
    problems, used, checked = [], set(), 0
    for name, doc in _corpus(bundle):
        checked += 1
        schema = sc.errors(doc)
        found = specmod.collect(doc, bundle) if isinstance(doc, dict) else []
        for f in found:
            if any(sc.related(f.pointer, e.pointer) for e in schema):
                continue
            rule = next((("stricter", i) for i, (pat, frag, _) in enumerate(sc.STRICTER)
                         if sc.matches(pat, f.pointer) and frag in f.message), None)
            if rule is None:
                problems.append(f"{name}: spec.py refuses {f.pointer}: {f.message} "
                                f"(the schema accepts it)")
            used.add(rule)
        for e in schema:
            if any(sc.related(e.pointer, f.pointer) for f in found):
                continue
            rule = next((("looser", i) for i, (pat, _) in enumerate(sc.LOOSER)
                         if sc.matches(pat, e.pointer)), None)
            if rule is None:
                problems.append(f"{name}: the schema refuses {e.pointer}: {e.message} "
                                f"(spec.py accepts it)")
            used.add(rule)
    return {"problems": problems, "used": used, "checked": checked}


def test_spec_and_schema_agree(comparison):
    assert comparison["checked"] > 900
    assert comparison["problems"] == []


def test_every_documented_difference_occurs(comparison):
    """No rule of STRICTER or LOOSER without a config in the corpus that needs it."""
    unused = [r[:2] for i, r in enumerate(sc.STRICTER) if ("stricter", i) not in
              comparison["used"]]
    unused += [r[0] for i, r in enumerate(sc.LOOSER) if ("looser", i) not in comparison["used"]]
    assert unused == []


@pytest.mark.parametrize("pattern,pointer,hit", [
    ("/linux/*Mappings/*/size", "/linux/uidMappings/0/size", True),
    ("/linux/*Mappings/*/size", "/linux/uidMappings/0", False),
    ("/windows/**", "/windows/layerFolders/0", True),
    ("/process/user/*", "/process/user/uid", True),
    ("/process/user/*", "/process/user", False),
])
def test_pointer_patterns(pattern, pointer, hit):
    assert sc.matches(pattern, pointer) is hit
