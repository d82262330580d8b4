"""The playbooks enable and disable run for real by ansible-playbook: the preflight step first, on two local "nodes"
and the admin host (localhost), with fake commands.

What it proves: a refusal on the admin host (rke missing, cluster.rkestate missing while kube-proxy runs,
kubernetes_version unset, the lock held) or on a node (a missing IPVS module) comes before the first change
anywhere: no package installed, no module loaded, no modules file written on any node, cluster.yml and the admin
folder unchanged, rke never run; prepare uses the node's report that preflight read (one reading per node); check
mode of disable on nodes in IPVS mode ends at once and names what would change.

Each node is this machine with its own folder, chosen by the interpreter Ansible runs: fake apt-get, modprobe and
docker come first on PATH and record their calls there, and a stand-in rkeops.ipvs.ipvs_node_info prints the node's
prepared report (a Debian node with loadable IPVS modules and no ipset/ipvsadm), as the kernel here has no module
tree. No root needed: the nodes' plays run without become.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402

NODES = ("node1", "node2")

STAND_IN = """\
#!/usr/bin/python
# STAND-IN for rkeops.ipvs.ipvs_node_info in tests/unit/roles/test_ipvs_preflight.py: the node's prepared report.
import json, os
node = os.environ["FAKE_NODE"]
with open(os.path.join(node, "calls"), "a") as handle:
    handle.write("ipvs_node_info\\n")
with open(os.path.join(node, "report.json")) as handle:
    print(handle.read())
"""

# apt-get and modprobe record that they were asked for a change; docker answers as a running kube-proxy in the mode
# of the node's state.json (what kube_proxy_info reads) and records a restart.
FAKE_RECORDER = """#!/bin/sh
echo "%(name)s $*" >> "$FAKE_NODE/calls"
"""
FAKE_DOCKER = r"""#!__PYTHON__
import json, os, sys
node = os.environ["FAKE_NODE"]
args = sys.argv[1:]
if args[0] not in ("inspect", "logs"):
    with open(os.path.join(node, "calls"), "a") as handle:
        handle.write("docker " + " ".join(args) + "\n")
with open(os.path.join(node, "state.json")) as handle:
    mode = json.load(handle)["mode"]
if args[0] == "inspect":
    print(json.dumps([{"RestartCount": 0, "State": {"Status": "running", "Running": True, "Restarting": False,
        "StartedAt": "2026-12-06T14:01:00.000000000Z", "FinishedAt": "0001-01-01T00:00:00Z"}}]))
elif args[0] == "logs":
    print('2026-12-06T14:01:00.100000000Z I1206 14:01:00.100000       1 server_others.go:212] "Using %s Proxier"' % mode)
"""
FAKE_RKE = """#!/bin/sh
if [ "$1" = --version ]; then echo "rke version v1.5.10"; exit 0; fi
echo "$*" >> "%(dir)s/rke-calls"
echo 'time="2024-05-01T12:00:09Z" level=info msg="Finished building Kubernetes cluster successfully"'
"""
# kube-proxy's metrics server off: the log decides the mode (no port to share between the nodes).
CLUSTER = """\
kubernetes_version: v1.24.17-rancher1-1
nodes:
  - {address: 10.0.0.11, user: rke, role: [controlplane, etcd, worker]}
  - {address: 10.0.0.12, user: rke, role: [worker]}
services:
  kubeproxy:
    extra_args:
      metrics-bind-address: ""
"""


def report(missing=()):
    modules = {name: "missing" if name in missing else "loadable" for name in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")}
    return {
        "changed": False,
        "os": {"family": "Debian", "distribution": "Debian", "version": "12", "container": "", "apt_lists": {"indexes": 3, "age": 60}},
        "kernel": {
            "release": "6.1.0-28-amd64",
            "version": "6.1.0",
            "proc_modules": True,
            "modules_dir": "/lib/modules/6.1.0-28-amd64",
            "modules_dir_exists": True,
            "other_module_trees": [],
            "reboot_required": False,
        },
        "modules": modules,
        "conntrack": {"module": "nf_conntrack", "probed": True},
        "commands": {"ipset": None, "ipvsadm": None},
        "persisted": {"exists": False, "modules": [], "notes": {}},
    }


def collection_with_stand_in(tmp_path: Path) -> Path:
    """ansible_collections/rkeops/ipvs: this checkout, but for the stand-in ipvs_node_info."""
    base = tmp_path / "collections"
    collection = base / "ansible_collections" / "rkeops" / "ipvs"
    (collection / "plugins" / "modules").mkdir(parents=True)
    for name in ("roles", "meta", "playbooks", "galaxy.yml"):
        (collection / name).symlink_to(ROOT / name)
    for name in ("module_utils", "filter"):
        (collection / "plugins" / name).symlink_to(ROOT / "plugins" / name)
    for module in (ROOT / "plugins" / "modules").glob("*.py"):
        if module.name != "ipvs_node_info.py":
            (collection / "plugins" / "modules" / module.name).symlink_to(module)
    (collection / "plugins" / "modules" / "ipvs_node_info.py").write_text(STAND_IN)
    return base


@pytest.fixture
def lab(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("apt-get", "modprobe"):
        (bin_dir / name).write_text(FAKE_RECORDER % {"name": name})
    (bin_dir / "docker").write_text(FAKE_DOCKER.replace("__PYTHON__", sys.executable))
    (bin_dir / "rke").write_text(FAKE_RKE % {"dir": tmp_path})
    for fake in bin_dir.iterdir():
        fake.chmod(0o755)
    (tmp_path / "cluster.yml").write_text(CLUSTER)
    (tmp_path / "cluster.rkestate").write_text('{"currentState": {}}\n')
    hosts = []
    for name in NODES:
        node = tmp_path / name
        node.mkdir()
        set_node(tmp_path, name, "iptables", report())
        python = node / "python"
        python.write_text('#!/bin/sh\nFAKE_NODE=%s PATH=%s:$PATH exec %s "$@"\n' % (node, bin_dir, sys.executable))
        python.chmod(0o755)
        hosts.append(
            "        %s: {ansible_connection: local, ansible_python_interpreter: %s, ansible_become: false, prereqs_modules_load_file: %s}"
            % (name, python, node / "rkeops-ipvs.conf")
        )
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "  children:\n    rke_nodes:\n      hosts:\n%s\n" % (sys.executable, "\n".join(hosts))
    )
    return tmp_path


def set_node(lab: Path, name: str, mode: str, node_report: dict) -> None:
    (lab / name / "state.json").write_text(json.dumps({"mode": mode}))
    (lab / name / "report.json").write_text(json.dumps(node_report))


def calls(lab: Path, name: str) -> list:
    path = lab / name / "calls"
    return path.read_text().splitlines() if path.exists() else []


def admin_folder(lab: Path) -> dict:
    """cluster.yml, cluster.rkestate, the lock and the backups, with their checksums."""
    names = ["cluster.yml", "cluster.rkestate", "cluster.rkeops-ipvs.lock", "rke-calls"]
    files = [lab / name for name in names] + sorted((lab / "rkeops-ipvs-backups").glob("*"))
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.exists()}


def playbook(lab: Path, name: str, *args: str):
    return ansible_cli.run(
        "-i",
        lab / "inventory.yml",
        "rkeops.ipvs.%s" % name,
        "-e",
        "ipvs_cluster_yml=%s" % (lab / "cluster.yml"),
        "-e",
        "ipvs_rke=%s" % (lab / "bin" / "rke"),
        *args,
        # The tests match the role's messages on one line each, as JSON strings.
        result_format="json",
        collections=collection_with_stand_in(lab),
        cwd=lab,
        # A guard against a hang, not a time limit: make test runs this lane niced beside emulated VMs (tests/lanes.py).
        timeout=900,
    )


def assert_nodes_untouched(lab: Path) -> None:
    """Each node was read once (preflight) and nothing else: no apt-get, no modprobe, no docker restart, no file."""
    for name in NODES:
        assert calls(lab, name) == ["ipvs_node_info"], (name, calls(lab, name))
        assert not (lab / name / "rkeops-ipvs.conf").exists()


def hold_lock(lab: Path) -> str:
    holder = dict(token="x", user="alice", host="admin1", pid=4242, pid_is_ansible_playbook=True, started="2026-12-06T14:30:00Z", play="another enable")
    (lab / "cluster.rkeops-ipvs.lock").write_text(json.dumps(holder))
    return "Another run holds the lock %s" % (lab / "cluster.rkeops-ipvs.lock")


def no_rke(lab: Path) -> str:
    (lab / "bin" / "rke").unlink()
    return "The rke binary %s could not be run on localhost" % (lab / "bin" / "rke")


def no_state_file(lab: Path) -> str:
    (lab / "cluster.rkestate").unlink()
    return "rke's state file %s is missing, but the cluster exists (kube-proxy runs on node1, node2)" % (lab / "cluster.rkestate")


def no_kubernetes_version(lab: Path) -> str:
    (lab / "cluster.yml").write_text(CLUSTER.replace("kubernetes_version: v1.24.17-rancher1-1\n", ""))
    return "sets no kubernetes_version, so rke v1.5.10 would deploy its own default version"


@pytest.mark.parametrize("refusal", [no_rke, no_state_file, no_kubernetes_version, hold_lock], ids=["rke", "rkestate", "version", "lock"])
def test_a_refusal_on_the_admin_host_leaves_every_node_as_it_was(lab, refusal):
    message = refusal(lab)
    before = admin_folder(lab)
    done = playbook(lab, "enable")
    assert done.returncode != 0
    assert message in done.stdout, done.stdout[-4000:]
    assert "Nothing was changed" in done.stdout or "this run changed nothing" in done.stdout
    # The run ended with the admin host's checks: the nodes' prepare never started.
    assert "PLAY [Prepare every node for kube-proxy's IPVS mode]" not in done.stdout
    assert_nodes_untouched(lab)
    assert admin_folder(lab) == before


def test_a_node_refused_in_preflight_stops_the_run_before_any_node_or_cluster_yml_changes(lab):
    set_node(lab, "node2", "iptables", report(missing=("ip_vs_sh",)))
    before = admin_folder(lab)
    done = playbook(lab, "enable")
    assert done.returncode != 0
    assert (
        "Nothing was changed on any node, and cluster.yml was not touched: node2: Kernel 6.1.0-28-amd64 lacks the module(s) ip_vs_sh "
        "(neither loadable nor built in). They usually come with linux-image-6.1.0-28-amd64"
    ) in done.stdout, done.stdout[-4000:]
    # node1 passed its checks, and was not prepared either.
    assert_nodes_untouched(lab)
    assert admin_folder(lab) == before and "rke-calls" not in before


def test_check_mode_of_enable_reads_each_node_once_and_changes_nothing(lab):
    before = admin_folder(lab)
    done = playbook(lab, "enable", "--check", "--diff")
    assert done.returncode == 0, done.stdout[-4000:]
    # prepare used preflight's report: one ipvs_node_info per node, then the dry runs of check mode only.
    for name in NODES:
        assert calls(lab, name) == ["ipvs_node_info", "modprobe --dry-run --all ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack"], calls(lab, name)
        assert not (lab / name / "rkeops-ipvs.conf").exists()
    assert "+      proxy-mode: ipvs" in done.stdout
    assert "rke up would run" in done.stdout
    assert admin_folder(lab) == before


def test_check_mode_of_disable_on_nodes_in_ipvs_mode_ends_at_once_naming_what_would_change(lab):
    (lab / "cluster.yml").write_text(CLUSTER.replace('      metrics-bind-address: ""\n', '      metrics-bind-address: ""\n      proxy-mode: ipvs\n'))
    for name in NODES:
        set_node(lab, name, "ipvs", report())
    before = admin_folder(lab)
    # verify would wait 2 attempts a minute apart for iptables mode, and fail, if check mode ran it.
    done = playbook(lab, "disable", "--check", "--diff", "-e", "ipvs_verify_retries=1", "-e", "ipvs_verify_delay=60")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "-      proxy-mode: ipvs" in done.stdout
    assert "rke up would run" in done.stdout
    assert done.stdout.count("kube-proxy would be restarted: it runs in ipvs mode, not iptables (rke up would run first") == len(NODES)
    assert "FAILED - RETRYING" not in done.stdout
    for name in NODES:
        assert calls(lab, name) == [], (name, calls(lab, name))  # read by preflight and repair only: no restart
    assert admin_folder(lab) == before
