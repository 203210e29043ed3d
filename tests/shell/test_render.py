"""Readers and renderers on a live process (this one): plain text is independent of the
terminal's width, and every topic renders on a rich console too."""
from __future__ import annotations

import io
import os

import pytest

from ocish import inspect, render
from ocish.inspect import TOPICS, Target
from tests.conftest import needs_root

pytestmark = needs_root  # `net` enters a network namespace


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_renders_plain_and_rich(topic, monkeypatch):
    data = inspect.read(topic, Target(os.getpid()))
    monkeypatch.setenv("COLUMNS", "40")
    narrow = render.TOPIC_RENDERERS[topic](data, False)
    monkeypatch.setenv("COLUMNS", "300")
    assert render.TOPIC_RENDERERS[topic](data, False) == narrow and isinstance(narrow, str)
    from rich.console import Console
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(render.TOPIC_RENDERERS[topic](data, True))
    assert out.getvalue().strip()
    assert render.to_json(data)


def test_caps_of_this_process_match_its_status():
    caps = {s.name: s for s in inspect.read("caps", Target(os.getpid())).sets}
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert caps["effective"].mask == status["CapEff"]
    assert len(caps["bounding"].caps) == bin(int(status["CapBnd"], 16)).count("1")
