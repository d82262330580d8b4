"""The repair step of the role rkeops.ipvs.ipvs run for real by ansible-playbook, on two local "nodes" with a fake docker.

What it proves: kube-proxy is restarted on exactly the nodes not in the expected mode, one batch at a time (serial),
each waited for until it reaches the mode; check mode restarts nothing and names the node; a node whose kube-proxy
does not reach the mode stops the run before the next batch; preflight's reading is reused when rke up did not run.
It needs no root: each node's fake docker comes first on PATH, where kube_proxy_info and the restart look for docker.
The direction tested is iptables (disable): the IPVS direction also needs kube-ipvs0 and ipvsadm on the host, which
the end-to-end tests (tests/e2e/test_admin_host.py) cover on the lab VMs.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402

# docker's semantics kube_proxy_info reads: inspect gives State.StartedAt, logs gives the lines with --timestamps;
# restart starts the container again (a new StartedAt), and kube-proxy then logs the proxier it picks.
FAKE_DOCKER = r"""#!__PYTHON__
import json, os, sys
node = os.environ["FAKE_NODE"]
with open(os.path.join(node, "state.json")) as handle:
    state = json.load(handle)
args = sys.argv[1:]
with open(os.path.join(node, "calls"), "a") as handle:
    handle.write(" ".join(args) + "\n")
if args[0] == "inspect":
    if not state.get("exists", True):
        sys.exit("Error: No such container: kube-proxy")
    running = state.get("running", True)
    # rke's command carries the mode cluster.yml asked for when the container was created (cmd_mode; none: no flag).
    config = {"Cmd": ["kube-proxy", "--v=2"] + (["--proxy-mode=" + state["cmd_mode"]] if state.get("cmd_mode") else [])} if "cmd_mode" in state else {}
    print(json.dumps([{"RestartCount": 0, "Config": config, "State": {"Status": "running" if running else "exited", "Running": running,
        "Restarting": False, "StartedAt": "2026-12-06T14:%02d:00.000000000Z" % state["starts"],
        "FinishedAt": "0001-01-01T00:00:00Z" if running else "2026-12-06T14:%02d:30.000000000Z" % state["starts"]}}]))
elif args[0] == "logs":
    line = '"Using %s Proxier"' % state["mode"]
    print("2026-12-06T14:%02d:00.100000000Z I1206 14:%02d:00.100000       1 server_others.go:212] %s" % (state["starts"], state["starts"], line))
elif args[0] == "restart":
    state["starts"] += 1
    state["mode"] = state["mode_after_restart"]
    with open(os.path.join(node, "state.json"), "w") as handle:
        json.dump(state, handle)
    print(args[1])
elif args[0] == "rm" and not state.get("running", True):
    state["exists"] = False
    with open(os.path.join(node, "state.json"), "w") as handle:
        json.dump(state, handle)
    print(args[1])
else:
    sys.exit("fake docker: %s not faked" % args)
"""

# rke up as it treats kube-proxy (rancher/rke docker/docker.go, research A1): a missing container is created from
# cluster.yml's configuration, a running one whose command differs is recreated from it, anything else is left as it
# is (a stopped one would be started as it was). Each creation starts kube-proxy in the mode its new command asks for.
FAKE_RKE = r"""#!__PYTHON__
import glob, json, os, re, sys
assert sys.argv[1:3] == ["up", "--config"], sys.argv
text = open(sys.argv[3]).read()
found = re.search(r"proxy-mode: *(\w+)", text)
wanted = found.group(1) if found else ""
for path in sorted(glob.glob(os.path.join("__LAB__", "node*", "state.json"))):
    with open(path) as handle:
        state = json.load(handle)
    running, exists = state.get("running", True), state.get("exists", True)
    if not exists or (running and state.get("cmd_mode", "") != wanted):
        state.update(exists=True, running=True, cmd_mode=wanted, mode=wanted or "iptables", starts=state["starts"] + 1)
        with open(path, "w") as handle:
            json.dump(state, handle)
with open(os.path.join("__LAB__", "rke-calls"), "a") as handle:
    handle.write(" ".join(sys.argv[1:]) + "\n")
print('time="2026-12-06T14:59:00Z" level=info msg="Finished building Kubernetes cluster successfully"')
"""


@pytest.fixture
def lab(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.replace("__PYTHON__", sys.executable))
    docker.chmod(0o755)
    rke = bin_dir / "rke"
    rke.write_text(FAKE_RKE.replace("__PYTHON__", sys.executable).replace("__LAB__", str(tmp_path)))
    rke.chmod(0o755)
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
        # Each "node" is this machine with its own fake docker state, chosen by the interpreter Ansible runs; the
        # fake comes first on PATH, where the modules look for docker.
        python.write_text('#!/bin/sh\nFAKE_NODE=%s PATH=%s:$PATH exec %s "$@"\n' % (node, bin_dir, sys.executable))
        python.chmod(0o755)
        hosts.append("        %s: {ansible_connection: local, ansible_python_interpreter: %s}" % (name, python))
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "  children:\n    rke_nodes:\n      hosts:\n%s\n" % (sys.executable, "\n".join(hosts))
    )
    return tmp_path


def set_node(lab: Path, name: str, mode: str, after: str = "iptables", **container) -> None:
    """container: cmd_mode (the --proxy-mode of its command, "" for none), running, exists."""
    (lab / name / "state.json").write_text(json.dumps(dict(mode=mode, mode_after_restart=after, starts=1, **container)))


def node_state(lab: Path, name: str) -> dict:
    return json.loads((lab / name / "state.json").read_text())


def rke_calls(lab: Path) -> list:
    calls = lab / "rke-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def docker_calls(lab: Path, name: str) -> list:
    calls = lab / name / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def restarts(lab: Path, name: str) -> int:
    return docker_calls(lab, name).count("restart kube-proxy")


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
                    ipvs_rke: %s
                    ipvs_verify_retries: 2
                    ipvs_verify_delay: 1
            """
            % (lab / "cluster.yml", lab / "bin" / "rke")
        )
    )
    return ansible_cli.run(
        "-i",
        lab / "inventory.yml",
        lab / "site.yml",
        "-e",
        "ipvs_repair_batch=%s" % batch,
        *args,
        # The tests match the role's messages on one line each, as JSON strings.
        result_format="json",
        cwd=lab,
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
    assert "The nodes of later batches were not touched" in done.stdout
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [1, 0, 0]


def test_a_container_whose_command_asks_for_the_other_mode_is_created_anew_by_rke_up_not_restarted(lab):
    # node2: rke up started it as it was while stopped (its command still asks for ipvs); node3: stopped, the same
    # command. A restart would start that command again; one rke up for the batch creates both from cluster.yml.
    set_node(lab, "node1", "iptables", cmd_mode="")
    set_node(lab, "node2", "ipvs", after="ipvs", cmd_mode="ipvs")
    set_node(lab, "node3", "ipvs", after="ipvs", cmd_mode="ipvs", running=False)
    done = repair(lab, batch="3")
    assert done.returncode == 0, done.stdout[-6000:]
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 0, 0]
    # Only the stopped one is removed (rke would start it as it was); rke recreates the running one itself.
    assert ["rm kube-proxy" in docker_calls(lab, name) for name in ("node1", "node2", "node3")] == [False, False, True]
    assert rke_calls(lab) == ["up --config cluster.yml"]
    assert [node_state(lab, name)["starts"] for name in ("node1", "node2", "node3")] == [1, 2, 2]
    assert done.stdout.count("kube-proxy created anew by rke up: its command asked for ipvs mode") == 2
    # The lock beside cluster.yml was taken and released, and rke's log kept beside the backups.
    assert not (lab / "cluster.rkeops-ipvs.lock").exists()
    assert len(list((lab / "rkeops-ipvs-backups").glob("rke-up-*-repair.log"))) == 1
    again = repair(lab, batch="3")
    assert again.returncode == 0 and rke_calls(lab) == ["up --config cluster.yml"]  # nothing left to repair


def test_check_mode_names_the_container_that_would_be_created_anew_and_changes_nothing(lab):
    set_node(lab, "node1", "iptables", cmd_mode="")
    set_node(lab, "node2", "ipvs", after="ipvs", cmd_mode="ipvs", running=False)
    set_node(lab, "node3", "iptables")
    done = repair(lab, "--check", batch="3")
    assert done.returncode == 0, done.stdout[-3000:]
    assert (
        "kube-proxy would be created anew by rke up: its container's command asks for ipvs mode, not iptables, and a "
        "restart would start the same command again (it is stopped: it would be removed first)" in done.stdout
    )
    assert rke_calls(lab) == [] and not (lab / "rkeops-ipvs-backups").exists()
    assert ["rm kube-proxy" in docker_calls(lab, name) for name in ("node1", "node2", "node3")] == [False, False, False]


def test_a_new_container_still_in_the_other_mode_names_cluster_yml_and_stops_the_next_batches(lab):
    # cluster.yml itself asks for ipvs: the container rke creates carries it again.
    cluster_yml = lab / "cluster.yml"
    cluster_yml.write_text(cluster_yml.read_text() + "      proxy-mode: ipvs\n")
    set_node(lab, "node1", "ipvs", after="ipvs", cmd_mode="ipvs", running=False)
    set_node(lab, "node2", "ipvs", after="ipvs", cmd_mode="ipvs", running=False)
    set_node(lab, "node3", "iptables", cmd_mode="")
    done = repair(lab)
    assert done.returncode != 0
    assert "kube-proxy was created anew by rke up on node1 (it ran in ipvs mode) and is still not in iptables mode" in done.stdout
    assert "Its command now asks for ipvs mode: if that is not iptables, %s does not ask for it" % cluster_yml in done.stdout
    assert "The nodes of later batches were not touched" in done.stdout
    # rke up ran once, for node1's batch; node2's batch never came.
    assert rke_calls(lab) == ["up --config cluster.yml"]
    assert "rm kube-proxy" not in docker_calls(lab, "node2")


def preflight_found_ipvs(rke_up):
    """A play leaving what preflight and switch hand to repair: kube-proxy read as ok in IPVS mode on every node, and
    whether rke up ran since."""
    return textwrap.dedent(
        """\
        - name: What preflight and switch left
          hosts: all
          gather_facts: false
          tasks:
            - name: Facts
              ansible.builtin.set_fact:
                ipvs_preflight_result: {ok: true, error: "", expected_mode: ipvs, kube_proxy: {ok: true, running_mode: ipvs, needs_restart: false}}
                ipvs_switch_result: {rke_up: %s}

        """
        % str(rke_up).lower()
    )


def test_preflights_reading_for_ipvs_mode_is_not_taken_for_the_iptables_direction(lab):
    # preflight read kube-proxy as ok for IPVS and rke up did not run; going towards iptables, repair reads again.
    set_node(lab, "node1", "iptables")
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "iptables")
    done = repair(lab, extra_play=preflight_found_ipvs(rke_up=False))
    assert done.returncode == 0, done.stdout[-3000:]
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 1, 0], done.stdout[-6000:]


@pytest.mark.parametrize(("rke_up", "reads"), [(False, False), (True, True)])
def test_preflights_reading_in_the_mode_spares_a_reading_unless_rke_up_ran(lab, rke_up, reads):
    # Towards IPVS, preflight found kube-proxy in the mode: without rke up since, that reading still holds and no node
    # is read again (no module execution); after rke up, which may have recreated kube-proxy, every node is read.
    for name in ("node1", "node2", "node3"):
        set_node(lab, name, "ipvs")
    done = repair(lab, "-e", "ipvs_expected_mode=ipvs", extra_play=preflight_found_ipvs(rke_up=rke_up))
    assert done.returncode == 0, done.stdout[-3000:]
    assert [bool(docker_calls(lab, name)) for name in ("node1", "node2", "node3")] == [reads] * 3, done.stdout[-6000:]
    assert [restarts(lab, name) for name in ("node1", "node2", "node3")] == [0, 0, 0]


# repair, then verify, as the disable playbook runs them (in one run: verify reads what repair left).
REPAIR_AND_VERIFY = """\
- name: Restart kube-proxy where it is not in iptables mode
  hosts: rke_nodes
  gather_facts: false
  tasks:
    - name: Repair
      ansible.builtin.include_role:
        name: rkeops.ipvs.ipvs
        tasks_from: repair
      vars: &settings
        ipvs_expected_mode: iptables
        ipvs_cluster_yml: %s
        ipvs_verify_retries: 1
        ipvs_verify_delay: 1
        # Nothing on this machine to connect to; its leftovers are read (read only), never counted as a problem.
        ipvs_verify_data_path: false
        ipvs_remove_leftovers: false

- name: Verify every node
  hosts: rke_nodes
  gather_facts: false
  tasks:
    - name: Verify
      ansible.builtin.include_role:
        name: rkeops.ipvs.ipvs
        tasks_from: verify
      vars: *settings
"""
HEADER = r"node\s+proxy mode\s+virtual servers\s+verdict\s+leftovers\s+data path\s+problems"


def test_verify_names_the_restarted_node_in_a_table_that_reads_as_one_in_json_and_yaml(lab):
    set_node(lab, "node1", "iptables")
    set_node(lab, "node2", "ipvs")
    set_node(lab, "node3", "ipvs", after="ipvs")  # restarting does not help: verify names it
    (lab / "disable.yml").write_text(REPAIR_AND_VERIFY % (lab / "cluster.yml"))
    done = ansible_cli.run("-i", lab / "inventory.yml", lab / "disable.yml", result_format="json", cwd=lab, timeout=900)
    assert done.returncode != 0  # node3
    # JSON (the default): one string per line of the table, the header whole.
    assert re.search(r'^\s+"%s",$' % HEADER, done.stdout, re.MULTILINE), done.stdout[-3000:]
    assert re.search(r'^\s+"node1\s+-\s+0\s+OK\s', done.stdout, re.MULTILINE)
    # repair stopped node3, so verify did not check it.
    assert re.search(r'^\s+"node3\s+-\s+0\s+FAILED\s+-\s+-\s+unreachable or not checked",?$', done.stdout, re.MULTILINE)
    assert '"kube-proxy restarted by repair on: node2, node3"' in done.stdout
    assert "kube-proxy was restarted on node3 (it ran in ipvs mode) and is still not in iptables mode" in done.stdout
    # YAML folds a list's long lines (the header broke at "data path"); the table is one literal block there.
    yaml = ansible_cli.run("-i", lab / "inventory.yml", lab / "disable.yml", result_format="yaml", cwd=lab, timeout=900)
    table = yaml.stdout.split("msg: |-\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert re.fullmatch(r"\s+%s" % HEADER, table[0]), yaml.stdout[-3000:]
    assert [line.split()[:4] for line in table[1:4]] == [["node1", "-", "0", "OK"], ["node2", "-", "0", "OK"], ["node3", "-", "0", "FAILED"]]
    assert [line.strip() for line in table[4:]] == ["kube-proxy restarted by repair on: node3"]  # node2's was the first run
