"""Benchmark: kube_proxy_leftovers' find-and-remove against one iptables-save | iptables-restore round trip.

On one lab VM (bookworm, QEMU), per iptables backend: 1,000 services' worth of iptables-mode rules, written the
way kube-proxy's iptables proxier writes them (pkg/proxy/iptables/proxier.go, 1.24+ layout: KUBE-SERVICES ->
KUBE-SVC-* -> KUBE-SEP-* with DNAT, KUBE-MARK-MASQ for off-cluster sources, a filter KUBE-SERVICES REJECT for each
service without endpoints, node ports for one in ten), next to Calico-like chains, are loaded with
iptables-restore. Then, in the same run and on the same node:

- baseline: one `iptables-<backend>-save | iptables-<backend>-restore` round trip of that rule set, timed on the
  node, best of 3;
- module: one execution of the module (its AnsiballZ payload, run again on the node with `python3`, which is what
  Ansible runs), current_mode=ipvs so that every iptables-mode rule is a leftover, timed on the node, best of 3,
  the rules restored before each. It is shown two ways:
  - find-and-remove: the module's own work, from the call of its main() to its result (iptables-save, parsing,
    finding, the one iptables-restore --noflush, the result and its diff), run in a Python that has imported the
    module and Ansible's module_utils already (the payload exploded with AnsiballZ's `explode`);
  - whole execution: the payload as Ansible runs it, which adds the interpreter's start and the imports. That part
    does not grow with the rules, and any module pays it: the run prints it, beside a whole execution of
    ansible.builtin.ping on the same node.
  The three measurements alternate within each of the 3 rounds, so a change of load on this machine hits them alike.

It prints the table and the ratio find-and-remove / baseline (goal: <= 2), and the whole execution's ratio beside
it. Wall times of the Ansible task seen from the controller (SSH and module transfer included) are printed too, for
information, and the whole execution of ansible.builtin.ping on the same node: what any module costs there.

    python bench/bench_leftovers.py [--services 1000]        (make bench-leftovers)
    RKEOPS_LEFTOVERS_VM=<facts.json from `lab.py up`> reuses a running VM.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
import lab  # noqa: E402

BACKENDS = ("nft", "legacy")
RUNS = 3


def chain_name(prefix: str, *parts: str) -> str:
    """kube-proxy's per-service chain names: prefix + the first 16 characters of base32(sha256(...)), as
    servicePortChainName / servicePortEndpointChainName do (pkg/proxy/iptables/proxier.go)."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def rules(services: int) -> str:
    """iptables-restore input: nat and filter as the iptables proxier writes them for `services` services."""
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-PROXY-CANARY"]
    nat_chains += ["cali-PREROUTING", "cali-OUTPUT", "cali-POSTROUTING", "cali-nat-outgoing"]
    nat, filt = [], []
    nat += [
        '-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING',
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        '-A cali-POSTROUTING -m comment --comment "cali:nYKhEzDlr11Jccal" -j cali-nat-outgoing',
    ]
    filter_chains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-CANARY", "KUBE-FIREWALL", "cali-FORWARD"]
    filt += [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    ]
    for index in range(services):
        name = f"ns{index % 50}/svc{index}:http"
        cluster_ip = f"10.43.{index // 250}.{index % 250 + 1}"
        if index % 20 == 19:  # a service without endpoints: the REJECT that outlives a switch (kubernetes#102314)
            filt.append(
                f'-A KUBE-SERVICES -d {cluster_ip}/32 -p tcp -m comment --comment "{name} has no endpoints" -m tcp --dport 80 '
                "-j REJECT --reject-with icmp-port-unreachable"
            )
            continue
        svc = chain_name("KUBE-SVC-", name, "tcp")
        nat_chains.append(svc)
        nat.append(f'-A KUBE-SERVICES -d {cluster_ip}/32 -p tcp -m comment --comment "{name} cluster IP" -m tcp --dport 80 -j {svc}')
        if index % 10 == 0:
            nat.append(f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{name}" -m tcp --dport {30000 + index} -j {svc}')
        nat.append(f'-A {svc} ! -s 10.42.0.0/16 -d {cluster_ip}/32 -p tcp -m comment --comment "{name} cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ')
        endpoints = [f"10.42.{(index + k) % 200}.{(index * 7 + k) % 250 + 2}" for k in range(2)]
        for k, endpoint in enumerate(endpoints):
            sep = chain_name("KUBE-SEP-", name, "tcp", endpoint)
            nat_chains.append(sep)
            probability = " -m statistic --mode random --probability 0.50000000000" if k == 0 else ""
            nat.append(f'-A {svc} -m comment --comment "{name} -> {endpoint}:8080"{probability} -j {sep}')
            nat.append(f'-A {sep} -s {endpoint}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
            nat.append(f'-A {sep} -p tcp -m comment --comment "{name}" -m tcp -j DNAT --to-destination {endpoint}:8080')
    nat.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" '
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    )
    out = ["*mangle", ":KUBE-PROXY-CANARY - [0:0]", "COMMIT", "*nat"]
    out += [f":{chain} - [0:0]" for chain in nat_chains] + nat + ["COMMIT", "*filter"]
    out += [f":{chain} - [0:0]" for chain in filter_chains] + filt + ["COMMIT"]
    return "\n".join(out) + "\n"


RESET = "for b in legacy nft; do printf '*raw\\nCOMMIT\\n*mangle\\nCOMMIT\\n*nat\\nCOMMIT\\n*filter\\nCOMMIT\\n' | iptables-$b-restore; done"


def ssh_run(ssh: list[str], command: str, data: str | None = None) -> subprocess.CompletedProcess:
    """Run a command on the node; SSH to an emulated VM on a loaded machine can miss lab.py's 5 s connect timeout."""
    for _attempt in range(4):
        done = subprocess.run(ssh + [command], input=data, capture_output=True, text=True, check=False, stdin=None if data else subprocess.DEVNULL)
        if done.returncode != 255:
            return done
    sys.exit(f"bench: no SSH connection to the node: {done.stderr}")


def timed(ssh: list[str], command: str) -> float:
    """Seconds `command` took on the node (date +%s%N around it, in a root shell)."""
    script = f"s=$(date +%s%N); {{ {command}; }} >/dev/null; rc=$?; e=$(date +%s%N); echo TIMED $rc $(( (e - s) / 1000 ))"
    done = ssh_run(ssh, "sudo sh -c " + shlex.quote(script))
    marks = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("TIMED ")]
    if not marks:
        sys.exit(f"bench: `{command}` printed no timing (rc {done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    rc, micros = marks[-1]
    if rc != "0":
        sys.exit(f"bench: `{command}` failed on the node (rc {rc}): {done.stderr}")
    return int(micros) / 1e6


# Runs the exploded module's main() in a Python that has imported it (and Ansible's module_utils) already, and
# prints the seconds main() took, up to its exit_json.
IN_PROCESS = r"""
import sys, time
sys.path.insert(0, "/root/bench-module")
sys.argv = ["kube_proxy_leftovers", "/root/bench-module/args"]
from ansible_collections.rkeops.ipvs.plugins.modules import kube_proxy_leftovers as module
started = time.monotonic()
try:
    module.main()
except SystemExit as exc:
    code = exc.code
seconds = time.monotonic() - started
sys.stderr.write("WORK %d %.6f\n" % (code or 0, seconds))
"""


def in_process(ssh: list[str]) -> float:
    """Seconds of the module's main() on the node, its imports done before the clock starts."""
    done = ssh_run(ssh, "sudo python3 -c " + shlex.quote(IN_PROCESS) + " >/dev/null")
    marks = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("WORK ")]
    if not marks or marks[-1][0] != "0":
        sys.exit(f"bench: the module's main() did not finish (rc {done.returncode}): {done.stderr[-1500:]}")
    return float(marks[-1][1])


def ping_seconds(ssh: list[str], inventory: Path, env: dict, runs: int) -> float:
    """A whole execution of ansible.builtin.ping's payload on the node, best of `runs`: what any module costs there
    before it does anything."""
    timed(ssh, "rm -rf /home/lab/.ansible/tmp /root/.ansible/tmp")
    done = ansible_cli.run("bench1", "-i", inventory, "-b", "-m", "ansible.builtin.ping", program="ansible", env=env)
    if done.returncode != 0:
        sys.exit("bench: ansible.builtin.ping failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
    kept = " ".join(f"{home}/.ansible/tmp/ansible-tmp-*/AnsiballZ_ping.py" for home in ("/home/lab", "/root"))
    return min(timed(ssh, f"python3 $(ls -d {kept} 2>/dev/null | head -1)") for _run in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=RUNS, help="measurements of each kind; the best counts")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()
    reuse = os.environ.get("RKEOPS_LEFTOVERS_VM")
    with tempfile.TemporaryDirectory(prefix="rkeops-bench-leftovers-") as tmp:
        work = Path(tmp)
        vm = json.loads(Path(reuse).read_text())[0] if reuse else lab.boot(lab.build_image("bookworm"), work / "vms", "bench1", 1536)
        try:
            lab.wait_ssh(vm, 600)
            ssh = lab.ssh_base(Path(vm["identity_file"]), vm["port"])
            text = rules(args.services)
            ssh_run(ssh, "cat > /tmp/bench.rules", data=text)
            inventory = work / "inventory.ini"
            inventory.write_text(
                f"bench1 ansible_host=127.0.0.1 ansible_port={vm['port']} ansible_user={lab.LAB_USER} "
                f"ansible_ssh_private_key_file={vm['identity_file']} ansible_python_interpreter=/usr/bin/python3 "
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
            )
            # Each module's payload (AnsiballZ_<module>.py) kept on the node, where the benchmark runs it again. Only an
            # unpipelined run writes the payload there (pipelining feeds it to the node's python3 through ssh), and
            # Ansible turns pipelining off when remote files are kept: said here, so that "through Ansible" is read
            # as an unpipelined run.
            env = {"ANSIBLE_KEEP_REMOTE_FILES": "True", "ANSIBLE_PIPELINING": "False"}
            lines = text.count("\n")
            rows = []
            for backend in args.backends:
                load = f"{RESET}; iptables-{backend}-restore < /tmp/bench.rules"
                timed(ssh, load)
                # One module execution through Ansible, keeping its payload on the node to run it again there.
                timed(ssh, "rm -rf /home/lab/.ansible/tmp /root/.ansible/tmp")
                started = time.monotonic()
                module_args = f"current_mode=ipvs backend={backend}"
                done = ansible_cli.run("bench1", "-i", inventory, "-b", "-m", "rkeops.ipvs.kube_proxy_leftovers", "-a", module_args, program="ansible", env=env)
                through_ansible = time.monotonic() - started
                if done.returncode != 0 or "CHANGED" not in done.stdout:
                    sys.exit("bench: the module did not remove the rules:\n" + done.stdout[-3000:] + done.stderr[-2000:])
                kept = " ".join(f"{home}/.ansible/tmp/ansible-tmp-*/AnsiballZ_kube_proxy_leftovers.py" for home in ("/home/lab", "/root"))
                payload = f"$(ls -d {kept} 2>/dev/null | head -1)"
                # The payload exploded (module, module_utils and the args Ansible sent), for the in-process timing.
                explode = f"cd $(dirname {payload}) && rm -rf debug_dir && python3 {payload} explode >/dev/null"
                ssh_run(ssh, f"sudo sh -c '{explode} && rm -rf /root/bench-module && cp -r debug_dir /root/bench-module'")
                baselines, wholes, works = [], [], []
                for _run in range(args.runs):
                    timed(ssh, load)
                    baselines.append(timed(ssh, f"iptables-{backend}-save | iptables-{backend}-restore"))
                    timed(ssh, load)
                    wholes.append(timed(ssh, f"python3 {payload}"))
                    timed(ssh, load)
                    works.append(in_process(ssh))
                baseline, whole, work_time = min(baselines), min(wholes), min(works)
                left = subprocess.run(
                    ssh + [f"sudo iptables-{backend}-save | grep -c -e KUBE-SVC- -e KUBE-SEP- -e 'has no endpoints' || true"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                if left.stdout.strip() != "0":
                    sys.exit(f"bench: {left.stdout.strip()} iptables-mode lines left after the module ran")
                rows.append((backend, lines, baseline, work_time, work_time / baseline, whole, whole / baseline, through_ansible))
                timed(ssh, RESET)
            print(f"\n{args.services} services ({rows[0][1]} lines of iptables-restore input), best of {args.runs}, times on the node:\n")
            print("| backend | baseline: save \\| restore | module find-and-remove | ratio | whole module execution | ratio | through Ansible (SSH included) |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for backend, _lines, baseline, work_time, ratio, whole, whole_ratio, through_ansible in rows:
                print(
                    f"| iptables-{backend} | {baseline:.2f} s | {work_time:.2f} s | {ratio:.2f} | {whole:.2f} s | {whole_ratio:.2f} | {through_ansible:.1f} s |"
                )
            ping = ping_seconds(ssh, inventory, env, args.runs)
            worst = max(row[4] for row in rows)
            print(f"\nGoal: find-and-remove / baseline <= 2 in one module execution: {'met' if worst <= 2 else 'NOT met'} (worst {worst:.2f}).")
            fixed = [row[5] - row[3] for row in rows]
            print(
                f"The interpreter's start and the imports add {min(fixed):.2f}-{max(fixed):.2f} s to each execution, whatever the rules; "
                f"a whole execution of ansible.builtin.ping takes {ping:.2f} s on the same node."
            )
        finally:
            if not reuse:
                lab.stop(work / "vms", "bench1")


if __name__ == "__main__":
    main()
