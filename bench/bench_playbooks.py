"""Benchmark: wall time of rkeops.ipvs.enable and verify on the 2-node lab, and SSH round trips per node.

Boots the 2-node lab cluster (tests/lab/labcluster.py: two QEMU VMs, the rke and kube-proxy stand-ins, the
rke_cluster inventory plugin), brings it up in iptables mode, then measures in one run:
  - enable: prerequisites on both nodes, backup and patch of cluster.yml, rke up, verification;
  - enable again (idempotent: no rke up);
  - verify alone, counting ssh invocations per node with a wrapper (pipelining: one per module execution,
    plus one for interpreter discovery).
There is no goal to reach for these figures, only to report them; fewer round trips is better.

Run: make bench-playbooks   (about 5 minutes)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "lab"))
import lab  # noqa: E402
from labcluster import lab_cluster  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rkeops-bench-") as tmp, lab_cluster(Path(tmp)) as cluster:
        rows = []
        for label in ("enable (switch to IPVS)", "enable again (no change)"):
            done, elapsed = cluster.playbook("enable")
            if done.returncode != 0:
                sys.exit("enable failed:\n" + done.stdout[-3000:])
            rows.append((label, elapsed, ""))
        ssh_log = Path(tmp) / "ssh-verify.log"
        done, elapsed = cluster.playbook("verify", ssh_log=ssh_log)
        if done.returncode != 0:
            sys.exit("verify failed:\n" + done.stdout[-3000:])
        per_node = ", ".join(f"{name}: {count}" for name, count in lab.ssh_round_trips(ssh_log, list(cluster.vms.values())).items())
        rows.append(("verify", elapsed, per_node))
    print("| playbook (2-node lab) | wall time | SSH round trips per node |")
    print("|---|---:|---|")
    for label, elapsed, trips in rows:
        print(f"| {label} | {elapsed:.1f} s | {trips} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
