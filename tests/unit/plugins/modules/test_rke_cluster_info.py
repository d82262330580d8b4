"""rke_cluster_info run through AnsibleModule: values read as rke reads them, files beside cluster.yml, failures."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import rke_cluster_info

from helpers import corpus_files, extra_args, rke_view

CLUSTER = """\
# production cluster
kubernetes_version: v1.26.8-rancher1-1
nodes:
  - address: 10.0.0.1
    user: rke
    ssh_key: |-
      -----BEGIN OPENSSH PRIVATE KEY-----
      c2VjcmV0LWtleS1tYXRlcmlhbA==
      -----END OPENSSH PRIVATE KEY-----
    role: [controlplane, etcd, worker]
private_registries:
  - url: registry.example
    password: hunter2
services:
  kube-api:
    service_cluster_ip_range: 10.96.0.0/12
  kubeproxy:
    extra_args:
      proxy-mode: ipvs
      metrics-bind-address: 0.0.0.0
"""
SECRETS = ("c2VjcmV0LWtleS1tYXRlcmlhbA", "hunter2", "BEGIN OPENSSH")


def run(capsys, check=False, **params):
    args = dict(params)
    args["_ansible_check_mode"] = check
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        rke_cluster_info.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    result["_rc"] = exited.value.code
    result["_raw"] = output
    return result


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cluster(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text(CLUSTER)
    return path


def test_values_and_files_beside_cluster_yml(cluster, capsys):
    (cluster.parent / "cluster.rkestate").write_text("{}")
    result = run(capsys, path=str(cluster))
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["cluster_yml"] == str(cluster)
    assert "mode" not in result and "owner" not in result  # no file attributes added for a "path" key
    assert result["service_cluster_ip_range"] == "10.96.0.0/12"
    assert result["kubernetes_version"] == "v1.26.8-rancher1-1"
    assert result["kube_proxy_extra_args"] == {"proxy-mode": "ipvs", "metrics-bind-address": "0.0.0.0"}
    assert result["metrics_bind_address"] == "0.0.0.0:10249"
    assert (result["state_file"], result["state_file_exists"]) == (str(cluster.parent / "cluster.rkestate"), True)
    assert (result["kube_config_file"], result["kube_config_exists"]) == (str(cluster.parent / "kube_config_cluster.yml"), False)


def test_the_room_beside_cluster_yml_and_the_sizes_a_run_copies(cluster, capsys):
    (cluster.parent / "cluster.rkestate").write_text("{}" * 1000)
    result = run(capsys, path=str(cluster))
    found = os.statvfs(cluster.parent)  # the oracle: the file system's own count, read here
    space = result["space"]
    assert space["directory"] == str(cluster.parent)
    assert space["cluster_yml_bytes"] == len(CLUSTER.encode()) and space["state_file_bytes"] == 2000
    # Free space moves with whatever else writes there: within a MiB of this read.
    assert abs(space["free_bytes"] - found.f_bavail * found.f_frsize) < 2**20
    (cluster.parent / "cluster.rkestate").unlink()
    assert run(capsys, path=str(cluster))["space"]["state_file_bytes"] == 0


def test_nothing_secret_is_returned(cluster, capsys):
    result = run(capsys, path=str(cluster))
    for secret in SECRETS:
        assert secret not in result["_raw"]


def test_defaults_of_a_minimal_file(tmp_path, capsys):
    path = tmp_path / "prod.cluster.yaml"
    path.write_text("nodes:\n  - address: 10.0.0.1\n    role: [worker]\n")
    (tmp_path / "kube_config_prod.cluster.yaml").write_text("apiVersion: v1\n")
    result = run(capsys, path=str(path))
    assert result["service_cluster_ip_range"] == "10.43.0.0/16"
    assert result["kubernetes_version"] is None
    assert result["kube_proxy_extra_args"] == {}
    assert result["metrics_bind_address"] == "127.0.0.1:10249"
    assert (result["state_file"], result["state_file_exists"]) == (str(tmp_path / "prod.cluster.rkestate"), False)
    assert result["kube_config_exists"] is True


def test_check_mode_reads_the_same_and_changes_nothing(cluster, capsys):
    before = digest(cluster)
    result = run(capsys, check=True, cluster_yml=str(cluster))
    assert result["changed"] is False and result["service_cluster_ip_range"] == "10.96.0.0/12"
    assert digest(cluster) == before
    assert sorted(os.listdir(cluster.parent)) == ["cluster.yml"]


def test_relative_path_and_symbolic_link_name_the_state_file_as_rke_does(cluster, capsys, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "site.yml").symlink_to(cluster)
    monkeypatch.chdir(other)
    result = run(capsys, path="site.yml")
    assert result["cluster_yml"] == str(other / "site.yml")
    assert result["state_file"] == str(other / "site.rkestate")  # rke names it after the path it was given
    assert result["service_cluster_ip_range"] == "10.96.0.0/12"


@pytest.mark.parametrize("path", corpus_files("cluster-yml"), ids=lambda p: p.name)
def test_corpus_file_values_match_an_independent_reader(path, capsys):
    result = run(capsys, path=str(path))
    assert result["_rc"] == 0, result.get("msg")
    data = rke_view(path.read_text()) or {}
    services = data.get("services") if isinstance(data.get("services"), dict) else {}
    api = services.get("kube-api") if isinstance(services.get("kube-api"), dict) else {}
    assert result["service_cluster_ip_range"] == (api.get("service_cluster_ip_range") or "10.43.0.0/16")
    assert result["kubernetes_version"] == (data.get("kubernetes_version") or None)
    assert result["kube_proxy_extra_args"] == extra_args(path.read_text())
    assert result["state_file"] == str(path.with_suffix(".rkestate"))


@pytest.mark.parametrize("path", [p for p in corpus_files("cluster-yml-bad") if p.name.startswith("b")], ids=lambda p: p.name)
def test_unrendered_template_fails_with_its_name_and_line(path, capsys):
    result = run(capsys, path=str(path))
    assert result["_rc"] == 1 and result["failed"] is True
    assert str(path) in result["msg"] and "unrendered Jinja template" in result["msg"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- " + SECRETS[0] + "\n", "line 1, column 1: the document is a list, but RKE's cluster.yml must be a mapping"),
        (
            "ssh_key: " + SECRETS[0] + "\nservices:\n  kube-api:\n    service_cluster_ip_range: [a]\n",
            "line 4, column 31: services.kube-api.service_cluster_ip_range is a list",
        ),
        ("ssh_key: " + SECRETS[0] + "\nnodes: [\n", "not valid YAML"),
    ],
)
def test_bad_file_fails_naming_file_line_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    result = run(capsys, path=str(path))
    assert result["failed"] is True and result["msg"].startswith(str(path) + ": ")
    assert message in result["msg"]
    assert SECRETS[0] not in result["_raw"]


def test_missing_file_and_directory(tmp_path, capsys):
    missing = run(capsys, path=str(tmp_path / "nope.yml"))
    assert missing["failed"] and "cannot read RKE cluster file %s: no such file" % (tmp_path / "nope.yml") in missing["msg"]
    folder = run(capsys, path=str(tmp_path))
    assert folder["failed"] and "is a directory" in folder["msg"]
