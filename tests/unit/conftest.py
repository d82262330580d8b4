"""Make this checkout importable as ansible_collections.rkeops.ipvs and locate the shared corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_LINK_BASE = ROOT / "build" / "pytest-collections"
_LINK = _LINK_BASE / "ansible_collections" / "rkeops" / "ipvs"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, _LINK)
sys.path.insert(0, str(_LINK_BASE))

from helpers import CORPUS  # noqa: E402  (needs the path set up above)


@pytest.fixture
def corpus():
    return CORPUS
