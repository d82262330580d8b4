"""tests/lab/labcluster.py's Cluster.playbook without VMs: what the end-to-end tests, the demo and bench_playbooks
get from it (the rke_cluster inventory of the lab's cluster.yml, the cluster's variables, JSON results, the log).

A playbook file on localhost stands in for rkeops.ipvs.<name>: it prints what the run received.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import labcluster  # noqa: E402

PLAY = textwrap.dedent(
    """\
    - name: Show what the run received
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Print it
          ansible.builtin.debug:
            msg: "{{ ipvs_cluster_yml }} {{ ipvs_rke }} nodes={{ groups['all'] | sort | join(',') }} ssh_log={{ lookup('env', 'RKEOPS_SSH_LOG') }}"
    """
)


def cluster(work: Path) -> labcluster.Cluster:
    vms = [{"instance": name, "port": 2200 + index, "identity_file": str(work / "id_ed25519")} for index, name in enumerate(labcluster.NODES)]
    lab_cluster = labcluster.Cluster(work, vms)
    labcluster.write_cluster_yml(lab_cluster)
    lab_cluster.inventory.write_text(f"plugin: rkeops.ipvs.rke_cluster\ncluster_yml: {lab_cluster.cluster_yml.name}\n")
    return lab_cluster


def test_a_playbook_gets_the_clusters_inventory_and_variables_and_prints_json(tmp_path, monkeypatch):
    # JSON even where the calling environment asks for YAML: the end-to-end tests read messages on one line.
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "yaml")
    lab_cluster = cluster(tmp_path)
    (tmp_path / "show.yml").write_text(PLAY)
    ssh_log = tmp_path / "ssh.log"
    done, elapsed = lab_cluster.playbook(str(tmp_path / "show.yml"), ssh_log=ssh_log)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = f"{lab_cluster.cluster_yml} {labcluster.STAND_INS / 'rke'} nodes=node1,node2 ssh_log={ssh_log}"
    assert '"msg": %s' % json.dumps(expected) in done.stdout, done.stdout
    assert elapsed > 0
    # The captured run is kept beside the cluster for a failed test's reader.
    assert (tmp_path / "last-show.log").read_text() == done.stdout + done.stderr
