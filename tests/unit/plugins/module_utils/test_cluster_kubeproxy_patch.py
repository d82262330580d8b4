"""The cluster.yml patch logic, on the shared corpus and on hand-written edge cases."""

from __future__ import annotations

import io

import pytest
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import build_request, patch
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import YamlEditError

from helpers import corpus_files, extra_args, kubeproxy, outside_stanza, rke_view

ASK = {"proxy_mode": "ipvs", "ipvs_scheduler": "sh", "masquerade_all": True, "ipvs_strict_arp": True}
ASKED_FLAGS = {"proxy-mode": "ipvs", "ipvs-scheduler": "sh", "masquerade-all": "true", "ipvs-strict-arp": "true"}


def request(**params):
    return build_request(dict(params))


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def assert_preserved(before, after):
    """Every line outside the kubeproxy stanza is unchanged, and so are the stanza's comments."""
    had_services = "services" in (rke_view(before) or {})
    outside_before, stanza_before = outside_stanza(before)
    outside_after, stanza_after = outside_stanza(after, with_new_services=not had_services)
    assert outside_after == outside_before
    for line in stanza_before:
        if line.lstrip().startswith("#"):
            assert line in stanza_after
    # Line endings: nothing but the file's own newline is ever added.
    if "\r\n" in before:
        assert "\n" not in after.replace("\r\n", "")
    assert after.endswith(("\n", "\r")) == before.endswith(("\n", "\r")) or not before.strip()


@pytest.mark.parametrize("path", corpus_files("cluster-yml"), ids=lambda p: p.name)
def test_corpus_file_is_patched_once_and_only_in_its_stanza(path):
    before = read(path)
    expected = dict(extra_args(before))
    expected.update(ASKED_FLAGS)

    first = patch(before, path.name, request(**ASK))
    assert first["changed"] is True
    after = first["text"]
    assert extra_args(after) == expected
    assert first["extra_args"] == expected
    assert_preserved(before, after)
    # Windows workers keep a mode they can run: win_extra_args is no longer empty.
    assert kubeproxy(after)["win_extra_args"]["proxy-mode"] == "kernelspace"

    second = patch(after, path.name, request(**ASK))
    assert second["changed"] is False
    assert second["text"] == after


@pytest.mark.parametrize("path", corpus_files("cluster-yml"), ids=lambda p: p.name)
def test_corpus_output_parses_with_ruamel_too(path):
    after = patch(read(path), path.name, request(**ASK))["text"]
    reader = YAML()
    # File 08 repeats a top-level key outside services, which RKE (go-yaml v2) tolerates.
    reader.allow_duplicate_keys = path.name.startswith("08-")
    data = reader.load(io.StringIO(after))
    assert dict(data["services"]["kubeproxy"]["extra_args"])["proxy-mode"] == "ipvs"


def test_ruamel_refuses_the_duplicate_key_that_rke_tolerates(corpus):
    with pytest.raises(DuplicateKeyError):
        YAML().load(io.StringIO(read(corpus / "cluster-yml" / "08-dump-dup-key-nulls-no-eol.yml")))


@pytest.mark.parametrize("path", corpus_files("cluster-yml-bad"), ids=lambda p: p.name)
def test_bad_corpus_file_is_refused_with_its_name_and_line(path):
    before = read(path)
    with pytest.raises(YamlEditError) as error:
        patch(before, str(path), request(**ASK))
    message = str(error.value)
    assert str(path) in message
    assert "line" in message


def test_duplicate_services_error_names_both_lines(corpus):
    path = corpus / "cluster-yml-bad" / "09-duplicate-services-key.yml"
    with pytest.raises(YamlEditError, match=r"services appears 2 times \(lines 5, 15\)"):
        patch(read(path), str(path), request())


def test_jinja_template_is_named_as_such(corpus):
    path = corpus / "cluster-yml-bad" / "b2-jinja-4space-services-kubeproxy.yml"
    with pytest.raises(YamlEditError, match="unrendered Jinja template"):
        patch(read(path), str(path), request())


# --------------------------------------------------------------------------- layouts

TWO_SPACE = """\
nodes:
  - address: 10.0.0.1
    user: rke
    role: [controlplane, etcd, worker]
services:
  etcd:
    snapshot: true
  kubelet:
    extra_binds:
      - /var/lib/x:/var/lib/x
network:
  plugin: canal
"""

FOUR_SPACE_FLUSH = """\
nodes:
- address: 10.0.0.1
  user: rke
services:
    kube-api:
        service_cluster_ip_range: 10.43.0.0/16
# the end
"""


def test_two_space_file_without_kubeproxy_gets_a_two_space_stanza():
    result = patch(TWO_SPACE, "c.yml", request(windows_proxy_mode=""))
    assert "  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\nnetwork:" in result["text"]
    assert_preserved(TWO_SPACE, result["text"])


def test_four_space_file_without_kubeproxy_gets_a_four_space_stanza():
    result = patch(FOUR_SPACE_FLUSH, "c.yml", request(windows_proxy_mode=""))
    assert "    kubeproxy:\n        extra_args:\n            proxy-mode: ipvs\n# the end" in result["text"]
    assert_preserved(FOUR_SPACE_FLUSH, result["text"])


def test_file_without_services_gets_services_at_the_end_in_its_own_style():
    text = "nodes:\n    - address: 10.0.0.1\n      user: rke\n"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == text + "services:\n    kubeproxy:\n        extra_args:\n            proxy-mode: ipvs\n"


@pytest.mark.parametrize("text", [TWO_SPACE, FOUR_SPACE_FLUSH, "nodes: []\nservices:\n  kubeproxy:\n    extra_args: {v: '2'}\n"])
def test_crlf_files_stay_crlf(text):
    crlf = text.replace("\n", "\r\n")
    result = patch(crlf, "c.yml", request(ipvs_scheduler="rr"))
    assert result["changed"]
    assert "\n" not in result["text"].replace("\r\n", "")
    assert extra_args(result["text"])["ipvs-scheduler"] == "rr"
    assert patch(result["text"], "c.yml", request(ipvs_scheduler="rr"))["changed"] is False


def test_missing_final_newline_is_kept():
    text = "nodes: []\nservices:\n  kubeproxy:"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == "nodes: []\nservices:\n  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs"


@pytest.mark.parametrize(
    ("stanza", "expected"),
    [
        ("  kubeproxy: {}\n", "  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n"),
        ("  kubeproxy: ~\n", "  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n"),
        ("  kubeproxy:\n    extra_args: {}\n", "  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n"),
        ("  kubeproxy:\n    extra_args: {v: 2}  # why\n", "  kubeproxy:\n    extra_args:  # why\n      v: 2\n      proxy-mode: ipvs\n"),
        ("  kubeproxy:\n    extra_args:\n      proxy-mode: iptables # old\n", "  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs # old\n"),
        ("  kubeproxy:\n    extra_args:\n      proxy-mode: 'iptables'\n", "  kubeproxy:\n    extra_args:\n      proxy-mode: 'ipvs'\n"),
    ],
)
def test_stanza_forms(stanza, expected):
    text = "services:\n" + stanza + "network:\n  plugin: none\n"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == "services:\n" + expected + "network:\n  plugin: none\n"


def test_a_flow_stanza_is_rewritten_only_when_nothing_in_it_would_be_lost():
    text = "services:\n  kubeproxy: {extra_args: {v: 1}}\n"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == "services:\n  kubeproxy:\n    extra_args:\n      v: 1\n      proxy-mode: ipvs\n"
    # extra_args is already right and would not be rewritten: it would be lost with the flow mapping.
    with pytest.raises(YamlEditError, match="services.kubeproxy is written in flow style"):
        patch("services:\n  kubeproxy: {extra_args: {proxy-mode: ipvs}}\n", "c.yml", request())


def test_an_indented_document_gets_services_at_its_own_column():
    text = "  nodes: []\n  network: {}\n"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == text + "  services:\n    kubeproxy:\n      extra_args:\n        proxy-mode: ipvs\n"


def test_unmanaged_keys_and_comments_inside_the_stanza_stay():
    text = "services:\n  kubeproxy:\n    image: my/kp:1  # pinned\n    extra_args:\n      # tuned by ops\n      v: 4\n    extra_env:\n      - A=b\n"
    result = patch(text, "c.yml", request(windows_proxy_mode=""))
    assert result["text"] == (
        "services:\n  kubeproxy:\n    image: my/kp:1  # pinned\n    extra_args:\n      # tuned by ops\n      v: 4\n"
        "      proxy-mode: ipvs\n    extra_env:\n      - A=b\n"
    )


# --------------------------------------------------------------------------- semantics


def test_values_are_written_as_rke_passes_them():
    result = patch("services: {}\n", "c.yml", request(masquerade_all=False, extra_args={"v": 2, "feature-gates": "A=true,B=false", "odd": "1.10"}))
    text = result["text"]
    assert "masquerade-all: false\n" in text
    assert 'odd: "1.10"\n' in text  # a plain 1.10 would be read as the float 1.1
    assert extra_args(text) == {"proxy-mode": "ipvs", "masquerade-all": "false", "v": "2", "feature-gates": "A=true,B=false", "odd": "1.10"}


def test_equivalent_go_booleans_are_not_rewritten():
    text = "services:\n  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n      masquerade-all: 'True'\n    win_extra_args: {x: y}\n"
    assert patch(text, "c.yml", request(masquerade_all=True))["changed"] is False


def test_yaml11_booleans_are_reported_or_fixed():
    text = "services:\n  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n      ipvs-strict-arp: yes\n    win_extra_args: {x: y}\n"
    warned = patch(text, "c.yml", request())
    assert warned["changed"] is False
    assert any("ipvs-strict-arp is yes" in w and "line 5" in w for w in warned["warnings"])
    fixed = patch(text, "c.yml", request(fix_yaml11_booleans=True))
    assert "      ipvs-strict-arp: true\n" in fixed["text"]


def test_iptables_mode_drops_ipvs_flags():
    text = "services:\n  kubeproxy:\n    extra_args:\n      proxy-mode: ipvs\n      ipvs-scheduler: rr\n      v: 2\n"
    result = patch(text, "c.yml", request(proxy_mode="iptables"))
    assert extra_args(result["text"]) == {"proxy-mode": "iptables", "v": "2"}
    assert (result["proxy_mode_before"], result["proxy_mode_after"]) == ("ipvs", "iptables")


def test_absent_undoes_present_exactly(corpus):
    for path in corpus_files("cluster-yml"):
        before = read(path)
        enabled = patch(before, path.name, request(ipvs_scheduler="rr"))["text"]
        disabled = patch(enabled, path.name, request(state="absent"))
        args = {k: v for k, v in extra_args(before).items() if k != "proxy-mode" and not k.startswith("ipvs-")}
        assert extra_args(disabled["text"]) == args, path.name
        assert "win_extra_args" not in kubeproxy(disabled["text"]) or kubeproxy(before).get("win_extra_args") is not None
        assert outside_stanza(disabled["text"])[0] == outside_stanza(enabled)[0]


def test_absent_on_a_file_without_kubeproxy_changes_nothing():
    assert patch(TWO_SPACE, "c.yml", request(state="absent"))["changed"] is False


def test_windows_guard_copies_inherited_flags_and_is_optional():
    text = "services:\n  kubeproxy:\n    extra_args:\n      feature-gates: A=true\n"
    guarded = kubeproxy(patch(text, "c.yml", request())["text"])
    assert guarded["win_extra_args"] == {"feature-gates": "A=true", "proxy-mode": "kernelspace"}
    unguarded = kubeproxy(patch(text, "c.yml", request(windows_proxy_mode=""))["text"])
    assert "win_extra_args" not in unguarded


def test_lib_modules_bind_is_reported_and_removed_on_request():
    text = (
        "services:\n  kubeproxy:\n    extra_binds:\n    - /usr/lib/modules:/lib/modules\n    - /a:/a\n"
        "    extra_args:\n      proxy-mode: ipvs\n    win_extra_args: {x: y}\n"
    )
    kept = patch(text, "c.yml", request())
    assert kept["changed"] is False
    assert any("duplicate mount point" in w and "line 4" in w for w in kept["warnings"])
    removed = patch(text, "c.yml", request(remove_lib_modules_binds=True))
    assert kubeproxy(removed["text"])["extra_binds"] == ["/a:/a"]
    assert "    extra_binds:\n    - /a:/a\n    extra_args:" in removed["text"]


def test_binds_are_added_in_the_files_list_style_and_removed_by_absent():
    text = "nodes:\n- address: 1.1.1.1\nservices:\n  kubeproxy:\n    extra_args: {}\n"
    added = patch(text, "c.yml", request(extra_binds=["/x:/x:ro"], windows_proxy_mode=""))
    assert "    extra_binds:\n    - /x:/x:ro\n" in added["text"]
    removed = patch(added["text"], "c.yml", request(state="absent", extra_binds=["/x:/x:ro"]))
    assert kubeproxy(removed["text"])["extra_binds"] == []


def test_diff_holds_only_the_stanza(corpus):
    path = corpus / "cluster-yml" / "07-rkeconfig-dump-sshkey-blockscalar.yml"
    text = read(path)
    result = patch(text, path.name, request())
    assert "BEGIN" not in result["before"] + result["after"]
    assert "ssh_key" not in result["before"] + result["after"]
    assert result["after"].startswith("  kubeproxy:")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the document is a list"),
        ("services: []\n", "services is a list"),
        ("services:\n  kubeproxy: ipvs\n", "services.kubeproxy is a scalar"),
        ("services:\n  kube-proxy:\n    extra_args: {}\n", "services.kube-proxy is ignored by RKE"),
        ("services:\n  kube_proxy: {}\n", "services.kube_proxy is ignored by RKE"),
        ("services:\n  kubeProxy: {}\n", "services.kubeProxy is ignored by RKE"),
        ("services:\n  kubeproxy: {}\n  kubeproxy: {}\n", r"services.kubeproxy appears 2 times \(lines 2, 3\)"),
        ("services:\n  kubeproxy:\n    extra_args: [a]\n", "extra_args is a list"),
        ("services:\n  kubeproxy:\n    extra_args:\n      v: {a: b}\n", "extra_args.v is a mapping"),
        ("services:\n  kubeproxy:\n    extra_args:\n      v: 1\n      v: 2\n", "extra_args.v appears 2 times"),
        ("services:\n  kubeproxy:\n    extra_binds: /a:/a\n", "extra_binds is a scalar"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("a: [1\n", "line 2"),
        ("x: &x {extra_args: {v: 1}}\nservices:\n  kubeproxy: *x\n", "alias"),
        ("services:\n  kubeproxy:\n    extra_args: {a: b,\n      c: d}\n", "spans several lines"),
        ("? [a]\n: 1\n", "a mapping key is a list"),
        ("services: {etcd: {}}\n", "line 1, column 11: services is written in flow style"),
        ("services: {kubeproxy: {extra_args: {v: 1}}}\n", "line 1, column 11: services is written in flow style"),
        ("services:\n  kubeproxy: {image: x}\n", "line 2, column 14: services.kubeproxy is written in flow style"),
        ("{nodes: []}\n", "line 1, column 1: the document is written in flow style"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(text, message):
    with pytest.raises(YamlEditError, match=message) as error:
        patch(text, "cluster.yml", request())
    assert "cluster.yml" in str(error.value)


def test_errors_never_quote_the_file():
    secret = "services:\n  kubeproxy: {}\nssh_key: |\n  -----BEGIN KEY-----\n  c2VjcmV0\n x: [\n"
    with pytest.raises(YamlEditError) as error:
        patch(secret, "cluster.yml", request())
    assert "c2VjcmV0" not in str(error.value) and "BEGIN" not in str(error.value)


def test_durations_accept_seconds_and_go_forms():
    result = patch("services: {}\n", "c.yml", request(ipvs_tcp_timeout=900, ipvs_tcpfin_timeout="1m30s", ipvs_udp_timeout="0", windows_proxy_mode=""))
    assert extra_args(result["text"]) == {"proxy-mode": "ipvs", "ipvs-tcp-timeout": "900s", "ipvs-tcpfin-timeout": "1m30s", "ipvs-udp-timeout": "0s"}


def test_output_is_yaml_that_pyyaml_and_rke_agree_on(corpus):
    for path in corpus_files("cluster-yml"):
        after = patch(read(path), path.name, request(extra_args={"odd": "yes", "n": "007"}))["text"]
        assert rke_view(after)["services"]["kubeproxy"]["extra_args"]["odd"] == "yes"
        typed = yaml.safe_load(after)["services"]["kubeproxy"]["extra_args"]
        assert typed["odd"] == "yes" and typed["n"] == "007"
