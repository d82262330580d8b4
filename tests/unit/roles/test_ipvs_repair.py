"""The repair step of the role rkeops.ipvs.ipvs run for real by ansible-playbook, on two local "nodes" with a fake docker.

What it proves: kube-proxy is restarted on exactly the nodes not in the expected mode, one batch at a time (serial),
each waited for until it reaches the mode; check mode restarts nothing and names the node; a node whose kube-proxy
does not reach the mode stops the run before the next batch; prepare's reading is reused when rke up did not run.
The direction tested is iptables (disable): the IPVS direction also needs kube-ipvs0 and ipvsadm on the host, which
the end-to-end tests (tests/e2e/test_admin_host.py) cover on the lab VMs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")

# docker's semantics kube_proxy_info reads: inspect gives State.StartedAt, logs gives the lines with --timestamps;
# restart starts the container again (a new StartedAt), and kube-proxy then logs the proxier it picks.
FAKE_DOCKER = r"""#!__PYTHON__
import json, os, sys
node = os.environ["FAKE_NODE"]
with open(os.path.join(node, "state.json")) as handle:
    state = json.load(handle)
args = sys.argv[1:]
if args[0] == "inspect":
    print(json.dumps([{"RestartCount": 0, "State": {"Status": "running", "Running": True, "Restarting": False,
        "StartedAt": "2026-12-06T14:%02d:00.000000000Z" % state["starts"], "FinishedAt": "0001-01-01T00:00:00Z"}}]))
elif args[0] == "logs":
    line = '"Using %s Proxier"' % state["mode"]
    print("2026-12-06T14:%02d:00.100000000Z I1206 14:%02d:00.100000       1 server_others.go:212] %s" % (state["starts"], state["starts"], line))
elif args[0] == "restart":
    with open(os.path.join(node, "calls"), "a") as handle:
        handle.write("restart %s\n" % args[1])
    state["starts"] += 1
    state["mode"] = state["mode_after_restart"]
    with open(os.path.join(node, "state.json"), "w") as handle:
        json.dump(state, handle)
    print(args[1])
else:
    sys.exit("fake docker: %s not faked" % args)
"""


@pytest.fixture
def lab(tmp_path):
    if not os.path.exists("/usr/bin/docker"):
        pytest.fail("the fake docker is bound over /usr/bin/docker, which must exist (make setup installs docker.io)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.replace("__PYTHON__", sys.executable))
    docker.chmod(0o755)
    # kube-proxy's metrics server off in cluster.yml: the log decides the mode (no port to share between the nodes).
    (tmp_path / "cluster.yml").write_text(
        "kubernetes_version: v1.24.17-rancher1-1\nnodes:\n  - {address: 10.0.0.11, user: rke, role: [worker]}\n"
        'services:\n  kubeproxy:\n    extra_args:\n      metrics-bind-address: ""\n'
    )
    hosts = []
    for name in ("node1", "node2", "node3"):
        node = tmp_path / name
        node.mkdir()
        python = node / "python"
        # Each "node" is this machine with its own fake docker state, chosen by the interpreter Ansible runs.
        # The fake comes first on PATH (docker restart); kube_proxy_info looks in /usr/bin before PATH, so the fake is
        # also bound over /usr/bin/docker in a
        # mount namespace of the module's own (unshare: private propagation, the host's docker is untouched; root).
        python.write_text(
            '#!/bin/sh\nFAKE_NODE=%s PATH=%s:$PATH exec unshare --mount sh -c \'mount --bind "$0" /usr/bin/docker && exec "$@"\' %s %s "$@"\n'
            % (node, bin_dir, docker, sys.executable)
        )
        python.chmod(0o755)
        hosts.append("        %s: {ansible_connection: local, ansible_python_interpreter: %s}" % (name, python))
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "  children:\n    rke_nodes:\n      hosts:\n%s\n" % (sys.executable, "\n".join(hosts))
    )
    return tmp_path


def set_node(lab: Path, name: str, mode: str, after: str = "iptables") -> None:
    (lab / name / "state.json").write_text(json.dumps(dict(mode=mode, mode_after_restart=after, starts=1)))


def restarts(lab: Path, name: str) -> int:
    calls = lab / name / "calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def repair(lab: Path, *args: str, batch: str = "1", extra_play: str = ""):
    (lab / "site.yml").write_text(
        extra_play
        + textwrap.dedent(
            """\
            - name: Restart kube-proxy where it is not in iptables mode
              hosts: rke_nodes
              gather_facts: false
              serial: "{{ ipvs_repair_batch | default(1) }}"
              max_fail_percentage: 0
              tasks:
                - name: Repair
                  ansible.builtin.include_role:
                    name: rkeops.ipvs.ipvs
                    tasks_from: repair
                  vars:
                    ipvs_expected_mode: iptables
                    ipvs_cluster_yml: %s
                    ipvs_verify_retries: 2
                    ipvs_verify_delay: 1
            """
            % (lab / "cluster.yml")
        )
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "build" / "collections"))
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab / "inventory.yml"), str(lab / "site.yml"), "-e", "ipvs_repair_batch=%s" % batch, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=lab,
        check=False,
        # A guard against a hang, not a time limit: make test runs this lane niced beside emulated VMs (tests/lanes.py).
        timeout=900,
    )


def test_only_the_node_in_the_other_mode_is_restarted_and_reaches_the_mode(lab):
    set_node(lab, "node1", "iptables")
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "iptables")
    done = repair(lab)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 1, 0], done.stdout[-6000:]
    assert "kube-proxy restarted: it ran in ipvs mode, now" in done.stdout
    # One node at a time: a batch per node.
    assert done.stdout.count("PLAY [Restart kube-proxy where it is not in iptables mode]") == 3
    again = repair(lab)
    assert again.returncode == 0 and restarts(lab, "node2") == 1  # nothing left to repair


def test_check_mode_names_the_node_and_restarts_nothing(lab):
    set_node(lab, "node1", "iptables")
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "iptables")
    done = repair(lab, "--check", batch="3")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "kube-proxy would be restarted: it runs in ipvs mode, not iptables" in done.stdout
    assert done.stdout.count("would be restarted") == 1
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 0, 0]


def test_a_node_that_does_not_reach_the_mode_stops_the_next_batches(lab):
    set_node(lab, "node1", "ipvs", after="ipvs")  # restarting does not help here
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "ipvs")
    done = repair(lab)
    assert done.returncode != 0
    assert "kube-proxy was restarted on node1 (it ran in ipvs mode) and is still not in iptables mode" in done.stdout
    assert "The nodes of later batches were not restarted" in done.stdout
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [1, 0, 0]


def test_prepares_reading_in_ipvs_mode_is_not_taken_for_the_iptables_direction(lab):
    # prepare read kube-proxy as ok for IPVS and rke up did not run; going towards iptables, repair reads again.
    set_node(lab, "node1", "iptables")
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "iptables")
    facts = textwrap.dedent(
        """\
        - name: What prepare and switch left
          hosts: all
          gather_facts: false
          tasks:
            - name: Facts
              ansible.builtin.set_fact:
                ipvs_kube_proxy: {ok: true}
                ipvs_switch: {rke_up: false}

        """
    )
    done = repair(lab, extra_play=facts)
    assert done.returncode == 0, done.stdout[-3000:]
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 1, 0], done.stdout[-6000:]
