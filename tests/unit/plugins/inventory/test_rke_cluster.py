"""The rke_cluster inventory plugin: its reading of every corpus file, and real `ansible-inventory` runs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.rkeops.ipvs.plugins.inventory.rke_cluster import ClusterError, read_cluster

from helpers import corpus_files, rke_view

ROOT = Path(__file__).resolve().parents[4]
# ansible-inventory of the interpreter running the tests (the project's virtual environment).
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402 - importable once tests/lab is on sys.path

RKE_ROLES = {"etcd", "controlplane", "worker"}


def nodes_of(path):
    nodes = (rke_view(path.read_text()) or {}).get("nodes")
    return nodes if isinstance(nodes, list) else []


def unknown_roles(path):
    return [role for node in nodes_of(path) for role in node.get("role") or [] if role not in RKE_ROLES]


NO_NODES = [path for path in corpus_files("cluster-yml") if not nodes_of(path)]
# rke refuses a role it does not know (23 keeps the placeholder "role" of an old example), so does the plugin.
BAD_ROLES = [path for path in corpus_files("cluster-yml") if unknown_roles(path)]
GOOD = [path for path in corpus_files("cluster-yml") if path not in NO_NODES and path not in BAD_ROLES]


def expected_hosts(path):
    """The hosts an operator expects from the file, read independently with PyYAML's BaseLoader."""
    data = rke_view(path.read_text())
    hosts = {}
    for node in data["nodes"]:
        name = node.get("hostname_override") or node["address"]
        key_path = node.get("ssh_key_path") or data.get("ssh_key_path") or "~/.ssh/id_rsa"
        hosts[name] = {
            "ansible_host": node["address"],
            "ansible_port": int(node.get("port") or 22),
            "ansible_user": node.get("user"),
            "roles": node.get("role") or [],
            "key_path": os.path.expanduser(key_path),
            "internal_address": node.get("internal_address") or node["address"],
        }
    return hosts


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_corpus_hosts_and_variables(path):
    hosts = {name: (hostvars, roles) for name, hostvars, roles in read_cluster(str(path))}
    expected = expected_hosts(path)
    assert list(hosts) == list(expected)
    for name, want in expected.items():
        hostvars, roles = hosts[name]
        assert hostvars["ansible_host"] == want["ansible_host"]
        assert hostvars["ansible_port"] == want["ansible_port"]
        assert hostvars.get("ansible_user") == want["ansible_user"]
        assert roles == want["roles"] == hostvars["rke_roles"]
        assert hostvars["rke_internal_address"] == want["internal_address"]
        if not hostvars["rke_ssh_key_inline"]:
            assert hostvars["ansible_ssh_private_key_file"] == want["key_path"]


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_corpus_never_exposes_inline_secrets(path):
    text = path.read_text()
    data = rke_view(text)
    secrets = [data.get("ssh_key"), data.get("ssh_cert")]
    for node in data["nodes"]:
        secrets += [node.get("ssh_key"), node.get("ssh_cert")]
    secrets = [secret.strip() for secret in secrets if secret and secret.strip()]
    dumped = json.dumps(read_cluster(str(path)))
    for secret in secrets:
        # The first line of a key or certificate is enough to tell it leaked.
        assert secret.splitlines()[-1][:20] not in dumped
    if secrets:
        assert 'rke_ssh_key_inline": true' in dumped or all("cert" in s for s in secrets)


def test_corpus_01_by_hand(corpus):
    hosts = {name: hostvars for name, hostvars, _roles in read_cluster(str(corpus / "cluster-yml" / "01-danbooru-ipvs-rr-col0-comment.yml"))}
    assert hosts["ame"]["ansible_host"] == "ame.donmai.us"
    assert hosts["ame"]["ansible_port"] == 60022
    assert hosts["ame"]["rke_internal_address"] == "172.16.0.7"
    assert hosts["korone"]["ansible_ssh_private_key_file"] == os.path.expanduser("~/.ssh/keys/evazion@github.com-id_ed25519")


def test_corpus_22_bastion_and_certificate(corpus):
    hosts = {name: hostvars for name, hostvars, _roles in read_cluster(str(corpus / "cluster-yml" / "22-rke1-docs-full-example.yml"))}
    data = rke_view((corpus / "cluster-yml" / "22-rke1-docs-full-example.yml").read_text())
    bastion = data["bastion_host"]
    for hostvars in hosts.values():
        args = hostvars["ansible_ssh_common_args"]
        assert args.startswith("-o ProxyCommand=")
        assert "ssh -W %h:%p -p " + bastion.get("port", "22") in args
        assert bastion["address"] in args
    assert hosts["2.2.2.2"]["rke_ssh_key_inline"]
    assert hosts["2.2.2.2"]["ansible_ssh_extra_args"] == "-o CertificateFile=/home/user/.ssh/test-key-cert.pub"


@pytest.mark.parametrize("path", NO_NODES, ids=lambda p: p.name)
def test_corpus_without_nodes_is_refused(path):
    with pytest.raises(ClusterError, match="has no nodes"):
        read_cluster(str(path))


def test_there_are_files_of_each_kind():
    assert len(GOOD) >= 19
    assert NO_NODES
    assert BAD_ROLES


@pytest.mark.parametrize("path", BAD_ROLES, ids=lambda p: p.name)
def test_corpus_unknown_role_is_refused(path):
    with pytest.raises(ClusterError) as error:
        read_cluster(str(path))
    assert str(path) in str(error.value)
    assert "unknown role(s) " + ", ".join(unknown_roles(path)) in str(error.value)


@pytest.mark.parametrize("path", [p for p in corpus_files("cluster-yml-bad") if p.name.startswith("b")], ids=lambda p: p.name)
def test_bad_corpus_templates_are_refused_with_file_and_line(path):
    with pytest.raises(ClusterError) as error:
        read_cluster(str(path))
    assert str(path) in str(error.value)
    assert "unrendered Jinja template" in str(error.value)
    assert "line " in str(error.value)


def test_bad_corpus_09_duplicate_services_does_not_matter_for_nodes(corpus):
    # The patcher refuses two services: keys; the inventory only reads nodes, which are unambiguous there.
    path = corpus / "cluster-yml-bad" / "09-duplicate-services-key.yml"
    assert [name for name, _vars, _roles in read_cluster(str(path))] == ["192.169.0.10"]


BAD = {
    "missing address": ("nodes:\n  - user: a\n    role: [worker]\n", "node 1 has no address"),
    "duplicate address": (
        "nodes:\n  - address: 10.0.0.1\n  - address: 10.0.0.1\n    port: '22'\n    hostname_override: b\n",
        "same address and port 10.0.0.1:22 as node 1 (line 2)",
    ),
    "duplicate name": (
        "nodes:\n  - address: 10.0.0.1\n    hostname_override: n\n  - address: 10.0.0.2\n    hostname_override: n\n",
        "same name n",
    ),
    "unknown role": ("nodes:\n  - address: 10.0.0.1\n    role: [master]\n", "unknown role(s) master"),
    "nodes not a list": ("nodes: {address: 10.0.0.1}\n", "'nodes' must be a list"),
    "node not a mapping": ("nodes:\n  - 10.0.0.1\n", "is not a mapping"),
    "empty nodes": ("nodes: []\n", "has no nodes"),
    "not a mapping": ("- a\n", "must be a mapping"),
    "invalid yaml": ("nodes: [\n", "not valid YAML"),
    "bad port": ("nodes:\n  - address: 10.0.0.1\n    port: ssh\n", "port must be a number"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_names_file_and_node(tmp_path, case):
    text, message = BAD[case]
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    with pytest.raises(ClusterError) as error:
        read_cluster(str(path))
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_nodes_behind_one_address_differ_by_port(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text("nodes:\n  - {address: 127.0.0.1, port: '2201', hostname_override: a}\n  - {address: 127.0.0.1, port: '2202', hostname_override: b}\n")
    assert [(name, hostvars["ansible_port"]) for name, hostvars, _roles in read_cluster(str(path))] == [("a", 2201), ("b", 2202)]


def test_missing_file(tmp_path):
    with pytest.raises(ClusterError, match="cannot read RKE cluster file .*missing.yml"):
        read_cluster(str(tmp_path / "missing.yml"))


def test_inline_key_only_node_gets_no_key_file(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text("nodes:\n  - address: 10.0.0.1\n    user: rke\n    ssh_key: |-\n      -----BEGIN OPENSSH PRIVATE KEY-----\n      c2VjcmV0\n")
    ((name, hostvars, _roles),) = read_cluster(str(path))
    assert hostvars["rke_ssh_key_inline"] is True
    assert "ansible_ssh_private_key_file" not in hostvars
    assert "c2VjcmV0" not in json.dumps(hostvars)


# --- real runs of ansible-inventory -----------------------------------------------------------------------


def unwrap(value):
    """ansible-inventory --list marks strings from inventory sources as unsafe: {"__ansible_unsafe": "text"}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def run_inventory(source, *args):
    return ansible_cli.run("-i", source, *args, program="ansible-inventory")


def unwrapped(text):
    """The text without its whitespace: ansible-core 2.16 wraps warnings at 80 columns, breaking paths at hyphens too."""
    return "".join(text.split())


def source_file(tmp_path, cluster_yml, extra=None):
    data = {"plugin": "rkeops.ipvs.rke_cluster", "cluster_yml": str(cluster_yml), **(extra or {})}
    path = tmp_path / "cluster.rke_cluster.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ansible_inventory_graph_and_list(tmp_path, corpus):
    cluster = corpus / "cluster-yml" / "07-rkeconfig-dump-sshkey-blockscalar.yml"
    source = source_file(
        tmp_path,
        cluster,
        {"keyed_groups": [{"key": "rke_labels.app | default('none')", "prefix": "app"}], "compose": {"node_ip": "rke_internal_address"}},
    )
    graph = run_inventory(source, "--graph")
    assert graph.returncode == 0, graph.stderr
    assert "@rke_nodes:" in graph.stdout and "@etcd:" in graph.stdout and "@app_ingress:" in graph.stdout
    listing = run_inventory(source, "--list")
    assert listing.returncode == 0, listing.stderr
    data = unwrap(json.loads(listing.stdout))
    assert set(data["rke_nodes"]["hosts"]) == {"server1", "10.10.0.202"}
    assert data["app_ingress"]["hosts"] == ["server1"]
    hostvars = data["_meta"]["hostvars"]["server1"]
    assert hostvars["node_ip"] == "10.10.0.201"
    assert hostvars["rke_ssh_key_inline"] is False
    assert data["_meta"]["hostvars"]["10.10.0.202"]["rke_ssh_key_inline"] is True
    # Neither the inline key of the file nor any PEM header reaches the output.
    assert "PRIVATE KEY" not in listing.stdout
    for secret_line in cluster.read_text().splitlines():
        if secret_line.strip().startswith("MII") or secret_line.strip().startswith("b3BlbnNzaC"):
            assert secret_line.strip()[:30] not in listing.stdout


def test_ansible_inventory_relative_path_and_prefix(tmp_path, corpus):
    shutil.copy(corpus / "cluster-yml" / "21-rke1-docs-minimal.yml", tmp_path / "cluster.yml")
    source = source_file(tmp_path, "cluster.yml", {"role_group_prefix": "rke_", "all_group": "k8s"})
    listing = run_inventory(source, "--list")
    assert listing.returncode == 0, listing.stderr
    data = unwrap(json.loads(listing.stdout))
    assert data["k8s"]["hosts"] == ["1.2.3.4"]
    assert data["rke_worker"]["hosts"] == ["1.2.3.4"]


def test_ansible_inventory_bad_file_fails_with_a_clear_error(tmp_path):
    cluster = tmp_path / "cluster.yml"
    cluster.write_text("nodes:\n  - address: 10.0.0.1\n  - address: 10.0.0.1\n    hostname_override: two\n")
    result = run_inventory(source_file(tmp_path, cluster), "--list")
    assert result.returncode != 0
    assert unwrapped(f"{cluster}: line 3, column 5: node 2 has the same address and port 10.0.0.1:22 as node 1 (line 2)") in unwrapped(result.stderr)


def test_ansible_inventory_cache_serves_a_second_run(tmp_path, corpus):
    shutil.copy(corpus / "cluster-yml" / "21-rke1-docs-minimal.yml", tmp_path / "cluster.yml")
    options = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"), "cache_timeout": 3600}
    source = source_file(tmp_path, tmp_path / "cluster.yml", options)
    first = run_inventory(source, "--list")
    assert first.returncode == 0, first.stderr
    # With the file gone, only the cache can answer.
    (tmp_path / "cluster.yml").unlink()
    second = run_inventory(source, "--list")
    assert second.returncode == 0, second.stderr
    assert unwrap(json.loads(second.stdout))["rke_nodes"]["hosts"] == ["1.2.3.4"]
    # Once the cache is flushed the plugin reads the file again, and says it is gone. ansible-inventory has
    # --flush-cache (2.19 and 2.21 do; 2.16, make units-oldest, does not: there flushing is removing the cache).
    if "--flush-cache" in run_inventory(source, "--help").stdout:
        flushed = run_inventory(source, "--list", "--flush-cache")
    else:
        shutil.rmtree(tmp_path / "cache")
        flushed = run_inventory(source, "--list")
    assert flushed.returncode != 0
    assert unwrapped("cannot read RKE cluster file") in unwrapped(flushed.stderr)
