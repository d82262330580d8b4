"""A 2-node lab RKE cluster: two lab VMs, a cluster.yml on this machine (the admin host), the rke stand-in.

Used by the end-to-end tests (tests/e2e) and by `make demo` (tests/lab/demo_enable.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import ansible_cli
import lab

ROOT = Path(__file__).resolve().parents[2]
STAND_INS = ROOT / "tests" / "stand-ins"
NODES = ("node1", "node2")
SUCCESS = "Finished building Kubernetes cluster successfully"


class Cluster:
    def __init__(self, work: Path, vms: list[dict]):
        self.work = work
        self.vms = {vm["instance"]: vm for vm in vms}
        self.cluster_yml = work / "cluster.yml"
        self.rkestate = work / "cluster.rkestate"
        self.inventory = work / "cluster.rke_cluster.yml"
        self.backups = work / "rkeops-ipvs-backups"

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        vm = self.vms[name]
        cmd = lab.ssh_base(Path(vm["identity_file"]), vm["port"]) + [command]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name}: {command}: {done.stderr}")
        return done

    def host(self, name: str, sudo: bool = True):
        """A testinfra host for the VM `name` (imported here: make demo runs before testinfra is needed)."""
        import testinfra  # noqa: PLC0415

        vm = self.vms[name]
        return testinfra.get_host(
            f"ssh://{lab.LAB_USER}@127.0.0.1:{vm['port']}",
            ssh_identity_file=vm["identity_file"],
            ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            sudo=sudo,
        )

    def mode(self) -> str:
        """The proxy mode cluster.yml asks for (what the last rke up deployed, when it succeeded)."""
        return "ipvs" if "proxy-mode: ipvs" in self.cluster_yml.read_text() else "iptables"

    def ensure_ipvs(self) -> None:
        """Bring the cluster to IPVS mode with the enable playbook, unless it is there already."""
        if self.mode() != "ipvs":
            done, _elapsed = self.playbook("enable")
            if done.returncode != 0:
                raise AssertionError("enable failed while preparing the test:\n" + done.stdout[-3000:])

    def ensure_fresh(self) -> None:
        """Bring the cluster to iptables mode with nothing of the collection left on the nodes, as at the start."""
        # A test that failed half-way can leave the cluster in iptables mode with the prerequisites still on the nodes.
        leftover = "test -e /etc/modules-load.d/rkeops-ipvs.conf || dpkg-query -W -f='${db:Status-Status}\\n' ipset ipvsadm 2>/dev/null | grep -qx installed"
        if self.mode() != "iptables" or any(self.ssh(name, leftover, check=False).returncode == 0 for name in NODES):
            done, _elapsed = self.playbook("disable", "-e", "ipvs_cleanup=true", "-e", "ipvs_remove_packages=true")
            if done.returncode != 0:
                raise AssertionError("disable failed while preparing the test:\n" + done.stdout[-3000:])
        for name in NODES:
            self.ssh(name, "sudo sh -c 'modprobe -r ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs 2>/dev/null; true'")

    def node_state(self, name: str) -> str:
        """What the collection changes on a node, to compare before and after a run: the checksums of
        /etc/modules-load.d, the IPVS modules loaded, and the state of the ipset and ipvsadm packages."""
        probe = (
            "sha256sum /etc/modules-load.d/* 2>/dev/null; echo '--- loaded'; awk '$1 ~ /^ip_vs/ {print $1}' /proc/modules | sort; "
            "echo '--- packages'; dpkg-query -W -f='${Package} ${db:Status-Status}\\n' ipset ipvsadm 2>&1"
        )
        return self.ssh(name, probe, check=False).stdout

    def backup_files(self) -> set[str]:
        return {p.name for p in self.backups.iterdir()} if self.backups.exists() else set()

    def playbook_args(self, name: str, *args: str) -> list[str]:
        """ansible-playbook's arguments for rkeops.ipvs.<name> (or the playbook file `name`) against the cluster,
        through the rke_cluster inventory plugin, with the rke stand-in."""
        playbook = name if name.endswith(".yml") else f"rkeops.ipvs.{name}"
        return [playbook, "-i", str(self.inventory), "-e", f"ipvs_cluster_yml={self.cluster_yml}", "-e", f"ipvs_rke={STAND_INS / 'rke'}", *args]

    def playbook(self, name: str, *args: str, ssh_log: Path | None = None, stream: bool = False) -> tuple[subprocess.CompletedProcess, float]:
        """Run rkeops.ipvs.<name> (or the playbook file `name`) against the cluster; (result, seconds). stream=True
        (make demo) prints the play as it runs, in Ansible's default result format, as an operator sees it."""
        env = lab.ssh_counter_env(self.work, ssh_log) if ssh_log is not None else None
        started = time.monotonic()
        # The tests read messages and verify's table on one line each, as JSON strings (tests/e2e/datapath.py).
        done = ansible_cli.run(*self.playbook_args(name, *args), env=env, result_format=None if stream else "json", cwd=self.work, stream=stream)
        elapsed = time.monotonic() - started
        if not stream:
            (self.work / f"last-{Path(name).stem}.log").write_text(done.stdout + done.stderr)
        return done, elapsed

    def rke_up(self, *flags: str) -> subprocess.CompletedProcess:
        """The rke stand-in on the admin host, as an operator would run rke."""
        return subprocess.run([str(STAND_INS / "rke"), "up", *flags, "--config", str(self.cluster_yml)], capture_output=True, text=True, check=False)

    def kube_proxy_log(self, name: str) -> str:
        done = self.ssh(name, "docker logs kube-proxy 2>&1")
        return done.stdout

    def break_ipvs(self, name: str) -> None:
        """Take the IPVS modules away from a node: unload them and remove them from its module tree."""
        self.ssh(
            name,
            "sudo sh -c 'docker stop kube-proxy >/dev/null 2>&1; ipvsadm -C 2>/dev/null; ip link delete kube-ipvs0 2>/dev/null; "
            "r=$(uname -r); modprobe -r ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs 2>/dev/null; "
            "mv /lib/modules/$r/kernel/net/netfilter/ipvs /root/ipvs-moved; depmod $r; "
            "docker start kube-proxy >/dev/null 2>&1; true'",
        )

    def repair_ipvs(self, name: str) -> None:
        """Put back what break_ipvs took, and heal the node as an operator would: when the cluster is in IPVS mode,
        the node's kube-proxy ran in iptables mode meanwhile and programmed its rules; `enable` restarts kube-proxy
        there and removes those leftovers, so that later tests find a clean IPVS node."""
        self.ssh(
            name,
            "sudo sh -c 'r=$(uname -r); if [ -d /root/ipvs-moved ]; then mv /root/ipvs-moved /lib/modules/$r/kernel/net/netfilter/ipvs; "
            "depmod $r; fi; modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh'",
        )
        if self.mode() == "ipvs":
            done, _elapsed = self.playbook("enable")
            if done.returncode != 0:
                raise AssertionError(f"enable did not heal {name}:\n" + done.stdout[-3000:])

    # Added for tests/e2e/test_real_behaviour.py (the stand-ins' real behaviours).
    def ssh_patient(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Cluster.ssh for a loaded machine: a 60 s connect timeout, and up to 3 tries while ssh itself fails (exit
        code 255, e.g. "Connection timed out during banner exchange"); the command's own result is never retried."""
        vm = self.vms[name]
        cmd = ["ConnectTimeout=60" if part == "ConnectTimeout=5" else part for part in lab.ssh_base(Path(vm["identity_file"]), vm["port"])]
        for _try in range(3):
            done = subprocess.run([*cmd, command], capture_output=True, text=True, check=False)
            if done.returncode != 255:
                break
            time.sleep(5)
        if check and done.returncode != 0:
            raise AssertionError(f"{name}: {command}: {done.stderr}")
        return done

    def rke(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """The rke stand-in with any arguments (global flags such as --debug come before `up`)."""
        return subprocess.run([str(STAND_INS / "rke"), *args], capture_output=True, text=True, check=False, env=dict(os.environ, **(env or {})))

    def container(self, name: str, container: str = "kube-proxy") -> dict | None:
        """`docker inspect` of a container on node `name`, None when there is none."""
        done = self.ssh_patient(name, f"docker inspect {container}", check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    def proxy_mode(self, name: str) -> str:
        """What kube-proxy answers on its metrics address, empty when it does not answer."""
        probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:10249/proxyMode', timeout=3).read().decode())"
        done = self.ssh_patient(name, f'python3 -c "{probe}"', check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def loaded_modules(self, name: str) -> set[str]:
        return {line.split()[0] for line in self.ssh_patient(name, "cat /proc/modules").stdout.splitlines() if line.strip()}

    def wait_for(self, what: str, probe, attempts: int = 60, delay: float = 2.0):
        """Poll probe() until it returns something true; its last value, or AssertionError naming `what`."""
        value = None
        for _attempt in range(attempts):
            value = probe()
            if value:
                return value
            time.sleep(delay)
        raise AssertionError(f"{what}: not reached after {attempts} tries; last value {value!r}")

    def started_at(self, name: str) -> str:
        """When the node's kube-proxy container last started (docker's StartedAt)."""
        return self.ssh(name, "docker inspect --format '{{.State.StartedAt}}' kube-proxy").stdout.strip()

    def restore_modules_not_loaded(self, name: str) -> None:
        """Put the IPVS modules that break_ipvs moved away back into the module tree, without loading them."""
        self.ssh(name, "sudo sh -c 'r=$(uname -r); mv /root/ipvs-moved /lib/modules/$r/kernel/net/netfilter/ipvs; depmod $r'")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_cluster_yml(cluster: Cluster) -> None:
    lines = [
        "# Lab cluster for the rkeops.ipvs end-to-end tests (two QEMU VMs behind 127.0.0.1).",
        "kubernetes_version: v1.24.17-rancher1-1",
        f"ssh_key_path: {cluster.vms['node1']['identity_file']}",
        "nodes:",
    ]
    for name, vm in cluster.vms.items():
        roles = "[controlplane, etcd, worker]" if name == "node1" else "[worker]"
        lines += [
            "  - address: 127.0.0.1",
            f'    port: "{vm["port"]}"',
            "    user: lab",
            f"    hostname_override: {name}",
            "    internal_address: 10.0.2.15",
            f"    role: {roles}",
        ]
    lines += [
        "services:",
        "  kube-api:",
        "    # the kubernetes service gets the first address: 10.43.0.1",
        "    service_cluster_ip_range: 10.43.0.0/16",
        "  kubeproxy:",
        "    extra_args:",
        "      v: 2",
    ]
    cluster.cluster_yml.write_text("\n".join(lines) + "\n")
    cluster.cluster_yml.chmod(0o600)


@contextlib.contextmanager
def lab_cluster(work: Path, suite: str = "bookworm", keep: bool = False):
    """Boot the VMs, start Docker on them, write cluster.yml and the inventory source, run the first rke up."""
    image = lab.build_image(suite)
    vms = [lab.boot(image, work / "vms", name, 1024) for name in NODES]
    try:
        for vm in vms:
            lab.wait_ssh(vm, 300)
        cluster = Cluster(work, vms)
        for name in NODES:
            cluster.ssh(name, "sudo systemctl start docker")
        write_cluster_yml(cluster)
        cluster.inventory.write_text(f"plugin: rkeops.ipvs.rke_cluster\ncluster_yml: {cluster.cluster_yml.name}\n")
        first = cluster.rke_up()
        if first.returncode != 0 or SUCCESS not in first.stdout:
            raise RuntimeError("the first rke up (stand-in) failed:\n" + first.stdout + first.stderr)
        yield cluster
    finally:
        if not keep:
            for vm in vms:
                lab.stop(work / "vms", vm["instance"])
