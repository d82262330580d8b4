"""services.kubeproxy as the file holds it: values, binds, the stanza's own lines, and what RKE would misread."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_stanza import Stanza
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import YamlEditError

from helpers import corpus_files, kubeproxy

TEXT = """\
nodes: []
services:
  kube-api:
    service_cluster_ip_range: 10.43.0.0/16
  kubeproxy:
    image: my/kp:1
    extra_args:
      proxy-mode: 'ipvs'
      v: 2
    extra_binds:
      - /a:/a
    win_extra_args: {proxy-mode: kernelspace}
network:
  plugin: canal
"""


def stanza(text, name="cluster.yml"):
    return Stanza(ClusterYml(text, name))


def test_values_binds_and_stanza_text():
    found = stanza(TEXT)
    assert dict(found.values()) == {"proxy-mode": "ipvs", "v": "2"}
    assert dict(found.values("win_extra_args")) == {"proxy-mode": "kernelspace"}
    assert found.bind_values() == ["/a:/a"]
    assert found.stanza_text() == "".join(line + "\n" for line in TEXT.splitlines()[4:12])
    assert found.source.where(found.args["v"][1]) == "cluster.yml: line 9, column 10"


def test_no_stanza():
    found = stanza("nodes: []\n")
    assert (found.kp_key, found.stanza_text(), dict(found.values()), found.bind_values()) == (None, "", {}, [])


@pytest.mark.parametrize("path", corpus_files("cluster-yml"), ids=lambda p: p.name)
def test_corpus_values_match_an_independent_reader(path):
    text = path.read_text()
    args = kubeproxy(text).get("extra_args")
    assert dict(stanza(text, path.name).values()) == (args if isinstance(args, dict) else {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services: []\n", "line 1, column 11: services is a list"),
        ("services:\n  kubeproxy: ipvs\n", "line 2, column 14: services.kubeproxy is a scalar"),
        ("services:\n  KubeProxy: {}\n", "line 2, column 3: services.KubeProxy is ignored by RKE"),
        ("services:\n  kubeproxy: {}\nservices: {}\n", r"services appears 2 times \(lines 1, 3\)"),
        ("services:\n  kubeproxy:\n    extra_args: {}\n    extra_args: {}\n", r"services.kubeproxy.extra_args appears 2 times \(lines 3, 4\)"),
        ("services:\n  kubeproxy:\n    win_extra_args: [a]\n", "services.kubeproxy.win_extra_args is a list"),
        ("services:\n  kubeproxy:\n    extra_args:\n      <<: {v: 1}\n", "services.kubeproxy.extra_args.<< is a mapping"),
        ("services:\n  kubeproxy:\n    extra_binds:\n      - [a, b]\n", "services.kubeproxy.extra_binds holds a list"),
        ("? {a: b}\n: c\n", "line 1, column 3: a mapping key is a mapping"),
    ],
)
def test_what_rke_would_read_differently_is_refused(text, message):
    with pytest.raises(YamlEditError, match="^cluster.yml: (.*: )?" + message):
        stanza(text)
