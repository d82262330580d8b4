"""The 2-node lab cluster every end-to-end test file shares: booted once per run, stopped at its end.

Each test brings the cluster to the state it needs first (Cluster.ensure_fresh, Cluster.ensure_ipvs) and puts back
what it breaks, so test files and tests run in any order.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from labcluster import lab_cluster  # noqa: E402

_BOOT_FAILED: list[str] = []


@pytest.fixture(scope="session")
def cluster():
    # pytest sets a failed session fixture up again for every test that asks for it: fail the rest at once instead.
    if _BOOT_FAILED:
        pytest.fail("the lab cluster could not be set up (see the first error): " + _BOOT_FAILED[0])
    try:
        with tempfile.TemporaryDirectory(prefix="rkeops-e2e-") as tmp, lab_cluster(Path(tmp)) as lab_cluster_:
            yield lab_cluster_
    except (RuntimeError, OSError, AssertionError) as exc:
        _BOOT_FAILED.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
