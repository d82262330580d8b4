"""Benchmark: the rkeops.ipvs.prereqs role against the manual procedure, on the same freshly booted lab VMs.

Boots 3 VMs (tests/lab/lab.py, QEMU software emulation) and, for 1, 2 and then 3 nodes, measures in one run:
  - baseline: the manual procedure, one SSH session per node (all nodes at once) running modprobe for each
    module, writing the modules-load.d file, `apt-get update` and `apt-get install ipset ipvsadm`;
  - converge: `ansible-playbook` running the role on the same nodes, after the baseline was undone;
  - idempotent: the same playbook again;
  - SSH round trips per node on the idempotent run, counted by an ssh wrapper (with pipelining, one ssh
    invocation per module execution).
Between measurements every node is put back to its fresh state: packages purged, apt's download cache
emptied and its lists marked stale, both modules-load.d files removed, the modules unloaded. A warm-up round
(baseline and undo, not measured) comes first so that both sides start with the same disk caches.

Goals: converge <= 1.5x baseline; idempotent <= 0.5x converge; 2-3 nodes <= 1.3x 1 node (converge);
module executions per node on an idempotent run <= 8. Each emulated VM keeps a host core busy, so on a 2-core
machine the 3-node round is bounded by the host's CPU: the baseline's own ratio is printed beside the role's.

Run: make bench-prereqs   (about 6 minutes)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
import lab  # noqa: E402

MODULES = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
BASELINE = (
    "set -e; for m in {mods}; do modprobe $m; done; printf '%s\\n' {mods} > /etc/modules-load.d/ipvs.conf; "
    "apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipset ipvsadm >/dev/null"
).format(mods=" ".join(MODULES))
UNDO = (
    "set -e; DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ipset ipvsadm >/dev/null; "
    "DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null; apt-get clean; "
    "rm -f /etc/modules-load.d/ipvs.conf /etc/modules-load.d/rkeops-ipvs.conf /var/lib/apt/periodic/update-success-stamp; "
    "touch -d '2 days ago' /var/lib/apt/lists /var/lib/apt/lists/*; "
    "modprobe -r ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs nf_conntrack; "
    "! grep -q '^ip_vs' /proc/modules"
)
PLAYBOOK = """\
- name: Prepare the nodes for IPVS
  hosts: all
  become: true
  gather_facts: false
  roles:
    - rkeops.ipvs.prereqs
"""


def on_nodes(vms: list[dict], script: str) -> float:
    """Run `script` as root on every node at once, one SSH session each; wall time."""

    def one(vm: dict) -> None:
        # ssh joins its arguments into one remote command line: the script must be quoted once more.
        cmd = lab.ssh_base(Path(vm["identity_file"]), vm["port"]) + ["sudo", "sh", "-c", shlex.quote(script)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{vm['instance']}: {script[:40]}... failed: {done.stderr.strip()}")

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(vms)) as pool:
        list(pool.map(one, vms))
    return time.monotonic() - started


def inventory(vms: list[dict], path: Path) -> None:
    hosts = {vm["instance"]: {"ansible_port": vm["port"]} for vm in vms}
    first = vms[0]
    data = {
        "all": {
            "hosts": hosts,
            "vars": {
                "ansible_host": "127.0.0.1",
                "ansible_user": first["user"],
                "ansible_ssh_private_key_file": first["identity_file"],
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }
    path.write_text(json.dumps(data))


def playbook(work: Path, vms: list[dict], ssh_log: Path) -> float:
    inv = work / f"inventory-{len(vms)}.json"
    inventory(vms, inv)
    started = time.monotonic()
    done = ansible_cli.run("-i", inv, work / "site.yml", env=lab.ssh_counter_env(work, ssh_log))
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit("ansible-playbook failed:\n" + done.stdout[-3000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="bookworm", choices=lab.SUITES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rkeops-bench-") as tmp:
        work = Path(tmp)
        (work / "site.yml").write_text(PLAYBOOK)
        image = lab.build_image(args.image)
        names = ["bench1", "bench2", "bench3"]
        vms = [lab.boot(image, work / "vms", name, 1024) for name in names]
        try:
            for vm in vms:
                lab.wait_ssh(vm, 300)
            print(f"3 VMs booted from {image.name} (kernel {vms[0]['kernel_release']}); warm-up round", file=sys.stderr)
            on_nodes(vms, BASELINE)
            on_nodes(vms, UNDO)
            rows = []
            for count in (1, 2, 3):
                nodes = vms[:count]
                baseline = on_nodes(nodes, BASELINE)
                on_nodes(nodes, UNDO)
                converge = playbook(work, nodes, work / "ssh-converge.log")
                ssh_log = work / f"ssh-idempotent-{count}.log"
                idempotent = playbook(work, nodes, ssh_log)
                on_nodes(nodes, UNDO)
                per_node = max(lab.ssh_round_trips(ssh_log, nodes).values())
                rows.append((count, baseline, converge, idempotent, per_node))
                print(f"{count} node(s) measured", file=sys.stderr)
        finally:
            for name in names:
                lab.stop(work / "vms", name)
    columns = ["nodes", "baseline (manual)", "role converge", "converge / baseline", "idempotent re-run", "idempotent / converge"]
    columns.append("SSH round trips per node (idempotent)")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for count, baseline, converge, idempotent, per_node in rows:
        print(f"| {count} | {baseline:.1f} s | {converge:.1f} s | {converge / baseline:.2f} | {idempotent:.1f} s | {idempotent / converge:.2f} | {per_node} |")
    for row in rows[1:]:
        print(f"converge {row[0]} nodes / 1 node: {row[2] / rows[0][2]:.2f} (baseline: {row[1] / rows[0][1]:.2f})")


if __name__ == "__main__":
    main()
