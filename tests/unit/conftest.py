"""Make this checkout importable as ansible_collections.rkeops.ipvs and locate the shared corpus."""

from __future__ import annotations

import importlib.util
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

if importlib.util.find_spec("ansible.module_utils.testing") is None:
    # ansible-core 2.16 to 2.18 (make units-oldest) have no ansible.module_utils.testing (2.19 and later do): the
    # module tests get the same patch_module_args from ansible_testing_compat.py, written the way those releases
    # read a module's args.
    import ansible_testing_compat

    sys.modules["ansible.module_utils.testing"] = ansible_testing_compat


@pytest.fixture
def corpus():
    return CORPUS
