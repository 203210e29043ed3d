"""Fixtures of the diagnose and bisect tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tmpdir_empty(tmp_path) -> Path:
    """An empty directory given as TMPDIR: what a dry run leaves there is a leak."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    return d
