"""ocish bisect's pure parts: the differences of two configs as units (ocish/bisect/delta.py),
the config a subset makes and its RFC 6902 patch (applied here by an independent applier,
tests/diagnose/jsonpatch.py), Zeller's ddmin (ocish/bisect/ddmin.py) against failure predicates
whose answer is known, and the failure signature (ocish/bisect/trial.py)."""
from __future__ import annotations

import copy
import itertools
import random

from hypothesis import given, settings, strategies as st

from ocish.bisect import absolute_paths, delta
from ocish.bisect.ddmin import FAIL, PASS, UNRESOLVED, ddmin, split
from ocish.bisect.trial import Trials, signature
from ocish.diagnose.model import Outcome
from runtime.defaults import default_spec
from tests.diagnose.jsonpatch import apply


def _pair() -> tuple[dict, dict]:
    good = default_spec()
    good["process"]["args"] = ["true"]
    bad = copy.deepcopy(good)
    bad["process"]["args"] = ["sh", "-c", "x"]
    bad["process"]["env"][0] = bad["process"]["env"][0] + ":/opt/bin"     # PATH changed
    bad["process"]["env"].append("FOO=1")
    bad["process"]["capabilities"]["bounding"].append("CAP_CHOWN")
    bad["process"]["capabilities"]["effective"].remove("CAP_KILL")
    bad["mounts"].insert(2, {"destination": "/data", "type": "tmpfs", "source": "tmpfs"})
    bad["mounts"][0], bad["mounts"][1] = bad["mounts"][1], bad["mounts"][0]
    bad["mounts"][4]["options"].append("ro")                               # /dev/shm
    bad["mounts"][5]["source"] = "other"                                   # /dev/mqueue
    bad["linux"]["namespaces"] = [n for n in bad["linux"]["namespaces"] if n["type"] != "ipc"]
    bad["annotations"] = {"org.example/a~b": "c"}
    del bad["hostname"]
    return good, bad


def test_units_are_leaves_and_array_items_at_the_documented_granularity():
    good, bad = _pair()
    got = [(c.op, c.pointer) for c in delta.changes(good, bad)]
    assert got == [
        ("replace", "/process/args"),                    # an argv is one value
        ("replace", "/process/env/0"),                   # env keyed by name: PATH replaced
        ("add", "/process/env/2"),
        ("add", "/process/capabilities/bounding/3"),     # a capability set: items
        ("remove", "/process/capabilities/effective/1"),
        ("remove", "/hostname"),
        ("add", "/mounts/4/options/5"),                  # a mount keyed by destination: inside
        ("replace", "/mounts/5/source"),
        ("order", "/mounts"),                            # /proc and /dev swapped
        ("add", "/mounts/2"),
        ("remove", "/linux/namespaces/2"),
        ("add", "/annotations"),
    ]


def test_all_units_make_bad_and_none_make_good():
    good, bad = _pair()
    uids = {c.uid for c in delta.changes(good, bad)}
    assert delta.same(delta.candidate(good, bad, uids), bad)
    assert delta.same(delta.candidate(good, bad, set()), good)
    assert delta.patch(good, good) == []
    assert delta.changes(good, copy.deepcopy(good)) == []


def test_every_subset_patch_applies_to_good_as_rfc6902_says():
    good, bad = _pair()
    uids = [c.uid for c in delta.changes(good, bad)]
    rng = random.Random(12)
    subsets = [set(s) for n in (1, 2) for s in itertools.combinations(uids, n)]
    subsets += [set(rng.sample(uids, rng.randint(0, len(uids)))) for _ in range(300)]
    for chosen in subsets:
        made = delta.candidate(good, bad, chosen)
        assert delta.same(apply(good, delta.patch(good, made)), made), chosen


def test_a_pointer_token_is_escaped():
    good, bad = _pair()
    made = delta.candidate(good, bad, {("annotations",)})
    assert delta.patch(good, made) == [{"op": "add", "path": "/annotations",
                                        "value": {"org.example/a~b": "c"}}]
    inner = delta.changes({"a": {"x/y~": 1}}, {"a": {"x/y~": 2}})
    assert [c.pointer for c in inner] == ["/a/x~1y~0"]


def test_repeated_items_are_told_apart_by_occurrence():
    good = {"mounts": [{"destination": "/a", "source": "1"}, {"destination": "/a", "source": "2"}]}
    bad = {"mounts": [{"destination": "/a", "source": "1"}, {"destination": "/a", "source": "3"}]}
    assert [(c.op, c.pointer) for c in delta.changes(good, bad)] == [("replace",
                                                                      "/mounts/1/source")]


def test_a_type_change_and_true_versus_1_are_replacements():
    assert [(c.op, c.pointer) for c in delta.changes({"a": 1, "b": [1]},
                                                     {"a": True, "b": {"x": 1}})] == \
        [("replace", "/a"), ("replace", "/b")]


json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from("ab"),
                           lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.sampled_from(["x", "y", "destination"]), kids,
                                             max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["mounts", "env", "k"]), json_values, max_size=3),
       st.dictionaries(st.sampled_from(["mounts", "env", "k"]), json_values, max_size=3),
       st.randoms())
def test_any_two_documents_round_trip(good, bad, rng):
    uids = [c.uid for c in delta.changes(good, bad)]
    assert delta.same(delta.candidate(good, bad, set(uids)), bad)
    chosen = set(rng.sample(uids, rng.randint(0, len(uids))))
    made = delta.candidate(good, bad, chosen)
    assert delta.same(apply(good, delta.patch(good, made)), made)


def test_split_covers_in_order():
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split([1, 2], 2) == [[1], [2]]


def _counting(fails):
    asked = []

    def test(subset):
        asked.append(tuple(subset))
        return FAIL if fails(set(subset)) else PASS
    return test, asked


def test_one_culprit_in_ten_takes_a_logarithmic_number_of_tests():
    for culprit in range(10):
        test, asked = _counting(lambda s: culprit in s)
        assert ddmin(range(10), test) == [culprit]
        assert len(set(asked)) <= 8, (culprit, asked)  # 2 per halving; 2^10 for all subsets


def test_two_changes_needed_together_are_both_returned():
    test, _ = _counting(lambda s: {2, 7} <= s)
    assert ddmin(range(10), test) == [2, 7]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.sets(st.integers(0, n - 1), min_size=1), min_size=1, max_size=3))))
def test_the_result_fails_and_is_1_minimal(case):
    """Fails iff it contains one of some causes (each a set of changes that must come
    together): the result fails, and without any one of its changes it passes."""
    n, causes = case

    def fails(s):
        return any(c <= s for c in causes)
    got = ddmin(range(n), lambda sub: FAIL if fails(set(sub)) else PASS)
    assert fails(set(got))
    for x in got:
        assert not fails(set(got) - {x}), (causes, got)


def test_an_unresolved_answer_never_reduces():
    """A subset that fails another way is not the failure: ddmin does not keep it."""
    def test(s):
        if 3 in s and 4 in s:
            return FAIL
        return UNRESOLVED if 0 in s else PASS
    assert ddmin(range(6), test) == [3, 4]


def test_a_failure_is_the_same_whichever_index_it_blames():
    a = Outcome(phase="setup", stage="mounts", error={"op": "stat", "errno": 2,
                                                      "pointer": "/mounts/8/source"})
    b = Outcome(phase="setup", stage="mounts", error={"op": "stat", "errno": 2,
                                                      "pointer": "/mounts/7/source"})
    c = Outcome(phase="setup", stage="mounts", error={"op": "mount", "errno": 1})
    assert signature(a) == signature(b) != signature(c)
    refused = [Outcome(phase="setup", reason=f"config /mounts/{i}/type: unknown") for i in (3, 9)]
    assert signature(refused[0]) == signature(refused[1])
    assert signature(Outcome(phase="exited", exit_status=0)) == ("healthy",)
    assert signature(Outcome(phase="exited", exit_status=1)) != \
        signature(Outcome(phase="exited", exit_status=2))


def test_paths_relative_to_a_bundle_are_made_absolute():
    """root.path and relative bind sources, as the runtime resolves them; other sources (a
    tmpfs's "tmpfs", an absolute bind) stay as they are."""
    spec = {"root": {"path": "rootfs"},
            "mounts": [{"destination": "/a", "type": "bind", "source": "data"},
                       {"destination": "/b", "source": "conf", "options": ["rbind"]},
                       {"destination": "/c", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/d", "type": "bind", "source": "/srv"}]}
    got = absolute_paths(spec, "/x/b")
    assert got["root"]["path"] == "/x/b/rootfs"
    assert [m["source"] for m in got["mounts"]] == ["/x/b/data", "/x/b/conf", "tmpfs", "/srv"]
    assert absolute_paths({"root": {"path": "../r/./fs"}}, "/x/b")["root"]["path"] == "/x/r/fs"


def test_another_failure_is_unresolved_unless_any_failure_counts():
    bad = Outcome(phase="setup", stage="mounts", error={"op": "stat", "errno": 2})
    other = Outcome(phase="exited", exit_status=1)
    for any_failure, want in ((False, UNRESOLVED), (True, FAIL)):
        trials = Trials(1.0, None, any_failure)
        try:
            trials.failure = signature(bad)
            assert trials.verdict(bad) == FAIL and trials.verdict(other) == want
            assert trials.verdict(Outcome(phase="running")) == PASS
        finally:
            trials.close()
