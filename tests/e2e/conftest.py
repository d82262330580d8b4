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

# The files in the order that needs the fewest switches between modes, each a playbook run of one to three minutes
# on the emulated VMs: test_playbooks starts from iptables mode and switches to IPVS, the next two files stay in
# IPVS, and test_clean_switch ends with disable. Files not named here run before test_clean_switch.
ORDER = ("test_playbooks.py", "test_admin_host.py", "test_real_behaviour.py", "test_clean_switch.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return ORDER.index(name) if name in ORDER else len(ORDER) - 1.5

    items.sort(key=rank)  # stable: file order within a file


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
