"""The one reader of cluster.yml: reading, refusals, rke's plain view, cluster-wide values, files rke derives."""

from __future__ import annotations

import os

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import (
    ClusterYml,
    ClusterYmlError,
    kube_config_path,
    plain,
    read_text,
    state_file_path,
    with_metrics_port,
)
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import YamlEditError

from helpers import corpus_files, rke_view

SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbA"


def cluster(text, name="cluster.yml"):
    return ClusterYml(text, name)


def values(found):
    return found.service_cluster_ip_range, found.kubernetes_version, found.kubeproxy_extra_args, found.metrics_bind_address


# --------------------------------------------------------------------------- files rke derives


@pytest.mark.parametrize(
    ("config", "state"),
    [
        ("/opt/rke/cluster.yml", "/opt/rke/cluster.rkestate"),
        ("/opt/rke/cluster.yaml", "/opt/rke/cluster.rkestate"),
        ("/opt/rke/cluster.conf", "/opt/rke/cluster.rkestate"),
        ("/opt/rke/cluster.YML", "/opt/rke/cluster.rkestate"),
        ("/opt/rke/prod.eu-west.cluster.yml", "/opt/rke/prod.eu-west.cluster.rkestate"),
        ("/opt/rke/cluster", "/opt/rke/cluster.rkestate"),
        ("/opt/rke.d/cluster", "/opt/rke.d/cluster.rkestate"),
        ("cluster.yml", "cluster.rkestate"),
    ],
)
def test_state_file_is_named_as_rke_names_it(config, state):
    assert state_file_path(config) == state
    assert cluster("nodes: []\n", config).state_file == state


@pytest.mark.parametrize(
    ("config", "kube_config"),
    [
        ("/opt/rke/cluster.yml", "/opt/rke/kube_config_cluster.yml"),
        ("/opt/rke/cluster.yaml", "/opt/rke/kube_config_cluster.yaml"),
        ("/opt/rke/prod.cluster.yml", "/opt/rke/kube_config_prod.cluster.yml"),
    ],
)
def test_kube_config_is_named_as_rke_names_it(config, kube_config):
    assert kube_config_path(config) == kube_config
    assert cluster("nodes: []\n", config).kube_config_file == kube_config


# --------------------------------------------------------------------------- reading


def test_read_text_follows_symbolic_links(tmp_path):
    real = tmp_path / "real.yml"
    real.write_text("nodes: []\n")
    link = tmp_path / "cluster.yml"
    link.symlink_to(real)
    assert read_text(str(link)) == (str(real), "nodes: []\n")


def test_read_errors_say_what_is_wrong_and_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "latin1.yml").write_bytes(b"nodes: []\nname: \xff\n")
    (tmp_path / "locked.yml").write_text("nodes: []\n")
    real_open = open

    def guarded_open(name, *args, **kwargs):
        if str(name).endswith("locked.yml"):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)
    cases = {
        "missing.yml": "no such file",
        "a": "symbolic link loop",
        "": "is a directory",
        "latin1.yml": "byte 16 is not UTF-8",
        "locked.yml": "cannot be read (Permission denied); run as a user that can read it",
    }
    for name, message in cases.items():
        path = str(tmp_path / name) if name else str(tmp_path)
        with pytest.raises(ClusterYmlError) as error:
            read_text(path)
        assert str(error.value).startswith("cannot read RKE cluster file %s: " % path)
        assert message in str(error.value)


def test_load_names_the_file_as_given(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text("nodes: [\n")
    with pytest.raises(ClusterYmlError, match="^%s: line 2, column 1: not valid YAML" % path):
        ClusterYml.load(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; RKE's cluster.yml must be a mapping"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n", "line 1, column 1: the document is a list, but RKE's cluster.yml must be a mapping"),
        ("just text\n", "the document is a scalar"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("nodes:\n  - {{ node }}: x\n", "line 2, column 5: a mapping key is a mapping, not a plain value; RKE cannot read such a key"),
    ],
)
def test_what_rke_cannot_read_is_refused(text, message):
    with pytest.raises(ClusterYmlError, match=message) as error:
        cluster(text)
    assert str(error.value).startswith("cluster.yml")
    assert isinstance(error.value, YamlEditError)  # callers that catch the YAML layer's error catch this one too


# --------------------------------------------------------------------------- Jinja


@pytest.mark.parametrize("path", [p for p in corpus_files("cluster-yml-bad") if p.name.startswith("b")], ids=lambda p: p.name)
def test_unrendered_jinja_is_named_once(path):
    text = path.read_text()
    try:
        found = cluster(text, str(path))
    except ClusterYmlError as exc:
        message = str(exc)
    else:
        message = str(found.error("%s: node 1 has no address" % path))
    assert "unrendered Jinja template" in message
    assert message.count("unrendered Jinja template") == 1
    assert "line" in message or "node 1" in message


def test_jinja_hint_only_for_files_with_template_markers():
    assert "Jinja" not in str(cluster("nodes: []\n").error("x"))
    assert str(cluster("nodes: []\n# {{ later }}\n").error("x")).endswith("if it is an unrendered Jinja template, render it first.")


# --------------------------------------------------------------------------- rke's view


def nulls_as_none(data):
    """PyYAML's BaseLoader keeps a null as its text ('', '~', 'null'); the plain view says None."""
    if isinstance(data, dict):
        return {key: nulls_as_none(value) for key, value in data.items()}
    if isinstance(data, list):
        return [nulls_as_none(item) for item in data]
    return None if data in (None, "", "~", "null", "Null", "NULL") else data


@pytest.mark.parametrize("path", corpus_files("cluster-yml"), ids=lambda p: p.name)
def test_plain_view_matches_an_independent_reader(path):
    text = path.read_text()
    assert nulls_as_none(plain(cluster(text, path.name).root)) == nulls_as_none(rke_view(text))


def test_plain_view_is_text_null_and_last_key_wins():
    found = cluster("a: 1\nb: yes\nc: ~\nd:\nl: [1, null]\na: 2\n")
    assert plain(found.root) == {"a": "2", "b": "yes", "c": None, "d": None, "l": ["1", None]}
    assert found.text("a") == "2"


# --------------------------------------------------------------------------- cluster-wide values


@pytest.mark.parametrize(
    "text",
    [
        "nodes: []\n",
        "services:\n",
        "services:\n  kube-api:\n",
        "services:\n  kube-api:\n    service_cluster_ip_range: ''\n",
        "services:\n  kube-api:\n    service_cluster_ip_range:\n",
    ],
)
def test_service_range_defaults_to_rkes(text):
    assert cluster(text).service_cluster_ip_range == "10.43.0.0/16"


def test_values_as_set():
    found = cluster(
        "kubernetes_version: v1.26.8-rancher1-1\nservices:\n  kube-api:\n    service_cluster_ip_range: 10.96.0.0/12\n"
        "  kubeproxy:\n    extra_args:\n      v: 2\n      masquerade-all: true\n      empty:\n"
    )
    assert found.service_cluster_ip_range == "10.96.0.0/12"
    assert found.kubernetes_version == "v1.26.8-rancher1-1"
    assert found.kubeproxy_extra_args == {"v": "2", "masquerade-all": "true", "empty": ""}


def test_defaults_when_unset():
    found = cluster("nodes: []\nkubernetes_version: ''\nservices:\n  kubeproxy: {}\n")
    assert found.kubernetes_version is None
    assert found.kubeproxy_extra_args == {}
    assert found.metrics_bind_address == "127.0.0.1:10249"


def test_last_of_two_equal_keys_wins_as_in_rke():
    found = cluster("services:\n  kube-api:\n    service_cluster_ip_range: 10.1.0.0/16\nservices:\n  kube-api:\n    service_cluster_ip_range: 10.2.0.0/16\n")
    assert found.service_cluster_ip_range == "10.2.0.0/16"


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("0.0.0.0:10249", "0.0.0.0:10249"),
        ("0.0.0.0", "0.0.0.0:10249"),
        ("192.168.1.10:9999", "192.168.1.10:9999"),
        ("'::'", "[::]:10249"),
        ("'[::1]:10250'", "[::1]:10250"),
        ("'[::1]'", "[::1]:10249"),
        ("localhost", "localhost:10249"),
        ("''", None),
    ],
)
def test_metrics_bind_address(value, address):
    found = cluster("services:\n  kubeproxy:\n    extra_args:\n      metrics-bind-address: %s\n" % value)
    assert found.metrics_bind_address == address
    if address:
        assert with_metrics_port(address) == address


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("services: [a]\n", "line 1, column 11: services is a list, but RKE expects a mapping"),
        ("services:\n  kube-api: x\n", "line 2, column 13: services.kube-api is a scalar, but RKE expects a mapping"),
        ("services:\n  kube-api:\n    service_cluster_ip_range: [a, b]\n", "line 3, column 31: services.kube-api.service_cluster_ip_range is a list"),
        ("kubernetes_version: {a: b}\n", "line 1, column 21: kubernetes_version is a mapping"),
        ("services:\n  kubeproxy:\n    extra_args: [a]\n", "line 3, column 17: services.kubeproxy.extra_args is a list"),
        ("services:\n  kubeproxy:\n    extra_args:\n      v: [2]\n", "line 4, column 10: services.kubeproxy.extra_args holds a list"),
    ],
)
def test_values_of_a_kind_rke_cannot_read_are_refused_with_file_line_and_key(text, where):
    found = cluster(text, "/opt/rke/cluster.yml")
    with pytest.raises(ClusterYmlError, match="^/opt/rke/cluster.yml: " + where.replace("[", r"\[")):
        values(found)


def test_errors_never_quote_the_file():
    text = "nodes:\n  - ssh_key: |-\n      " + SECRET + "\nservices:\n  kube-api:\n    service_cluster_ip_range: [" + SECRET + "]\n"
    with pytest.raises(ClusterYmlError) as error:
        values(cluster(text))
    assert SECRET not in str(error.value)
    with pytest.raises(ClusterYmlError) as error:
        cluster(text + "x: [\n")
    assert SECRET not in str(error.value)


def test_the_file_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "cluster.yml"
    path.write_text("nodes: []\n# {{ not rendered }}\n")
    opened = []
    real_open = open

    def counting_open(name, *args, **kwargs):
        opened.append(os.path.basename(str(name)))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    found = ClusterYml.load(str(path))
    assert "unrendered Jinja template" in str(found.error("x"))
    assert opened == ["cluster.yml"]
