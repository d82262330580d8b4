"""The main job on a local lab: `rkeops.ipvs.enable` end to end, where no real cluster exists.

Boots two lab VMs (Debian bookworm, real kernel and Docker engine), writes a cluster.yml for them on this
machine, brings the cluster up in iptables mode with the rke STAND-IN (tests/stand-ins/rke, which runs the
kube-proxy STAND-IN on each node), then runs exactly what an operator runs against a real cluster:

  ansible-playbook rkeops.ipvs.enable -i cluster.rke_cluster.yml -e ipvs_cluster_yml=cluster.yml -e ipvs_rke=<rke>

and ends with the playbook's per-node verification table. The VMs are stopped at the end (--keep leaves them
running and prints how to reach them).

Run: make demo
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from labcluster import lab_cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the VMs running (stop them with lab.py down)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rkeops-demo-"))
    print(f"lab cluster in {work}: 2 VMs, cluster.yml, cluster.rke_cluster.yml (inventory plugin source)", flush=True)
    with lab_cluster(work, keep=args.keep) as cluster:
        print(f"cluster up in iptables mode (rke stand-in); now: ansible-playbook rkeops.ipvs.enable -i {cluster.inventory.name}", flush=True)
        done, elapsed = cluster.playbook("enable", "--diff", stream=True)
        print(f"\nenable finished in {elapsed:.0f} s with exit code {done.returncode}; cluster.yml: {cluster.cluster_yml}")
        if args.keep:
            print(f"VMs left running; stop them with: python3 tests/lab/lab.py down --state {work / 'vms'}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
