"""Property-based tests: generated cluster.yml files in many layouts, random requests."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import build_request, patch

from helpers import extra_args, kubeproxy, outside_stanza, rke_view

FLAG_VALUES = {
    "v": st.sampled_from(["2", "4"]),
    "proxy-mode": st.sampled_from(["ipvs", "iptables"]),
    "ipvs-scheduler": st.sampled_from(["rr", "lc"]),
    "feature-gates": st.sampled_from(["A=true", "A=true,B=false"]),
    "masquerade-all": st.sampled_from(["true", "false"]),
    "metrics-bind-address": st.sampled_from(["0.0.0.0:10249", "127.0.0.1"]),
}


@st.composite
def flags(draw):
    names = draw(st.lists(st.sampled_from(sorted(FLAG_VALUES)), unique=True, max_size=4))
    return {name: draw(FLAG_VALUES[name]) for name in names}


def quoted(value, style):
    return {"plain": value, "single": "'%s'" % value, "double": '"%s"' % value}[style]


@st.composite
def cluster_files(draw):
    step = draw(st.sampled_from([2, 4]))
    seq = draw(st.sampled_from([0, step]))
    pad = " " * step
    lines = ["# generated cluster.yml", "cluster_name: prop"]
    nodes = ["nodes:"]
    for index in range(draw(st.integers(0, 2))):
        nodes.append(" " * seq + "- address: 10.0.0.%d" % (index + 1))
        nodes.append(" " * (seq + 2) + "user: rke")
        if draw(st.booleans()):
            nodes.append("#" + " " * (seq + 1) + "internal_address: hidden")
        nodes.append(" " * (seq + 2) + "role: [worker]")
    if len(nodes) == 1:
        nodes[0] = "nodes: []"

    services = ["services:"]
    if draw(st.booleans()):
        services += [pad + "etcd:", pad * 2 + "snapshot: true"]
    if draw(st.booleans()):
        services += [pad + "# the API", pad + "kube-api:", pad * 2 + "service_cluster_ip_range: 10.43.0.0/16"]
    existing = {}
    form = draw(st.sampled_from(["absent", "null", "empty", "block"]))
    if form == "null":
        services.append(pad + "kubeproxy:" + draw(st.sampled_from(["", " ", " ~"])))
    elif form == "empty":
        services.append(pad + "kubeproxy: {}")
    elif form == "block":
        services.append(pad + "kubeproxy:" + draw(st.sampled_from(["", " ", "  # kube-proxy"])))
        if draw(st.booleans()):
            services.append(pad * 2 + "image: rancher/hyperkube:v1.20")
        existing = draw(flags())
        if existing or draw(st.booleans()):
            if not existing and draw(st.booleans()):
                services.append(pad * 2 + "extra_args: {}")
            else:
                services.append(pad * 2 + "extra_args:" + draw(st.sampled_from(["", " "])))
                for name, value in existing.items():
                    if draw(st.integers(0, 4)) == 0:
                        services.append("#" + pad * 3 + "old: comment")
                    style = draw(st.sampled_from(["plain", "single", "double"]))
                    services.append(pad * 3 + "%s: %s" % (name, quoted(value, style)))
        if draw(st.booleans()):
            services += [pad * 2 + "extra_binds:", " " * (step * 2 + seq) + "- /etc/x:/etc/x"]
        if draw(st.booleans()):
            services.append(pad * 2 + "win_extra_args: {}")
    if draw(st.booleans()):
        services += [pad + "kubelet:", pad * 2 + "extra_binds:", " " * (step * 2 + seq) + "- /a:/a"]
    has_services = draw(st.booleans()) or form != "absent"
    if len(services) == 1:
        services = ["services: {}"] if has_services else []
    if not has_services:
        services = []

    blocks = [nodes, services] if draw(st.booleans()) else [services, nodes]
    for block in blocks:
        lines += block
    if draw(st.booleans()):
        lines += ["network:", pad + "plugin: canal"]
    if draw(st.booleans()):
        lines.append("# trailing comment")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return text, existing


@st.composite
def requests(draw):
    state = draw(st.sampled_from(["present", "present", "absent"]))
    params = {"state": state, "windows_proxy_mode": draw(st.sampled_from(["kernelspace", ""]))}
    if state == "present":
        params["proxy_mode"] = draw(st.sampled_from(["ipvs", "iptables"]))
        if params["proxy_mode"] == "ipvs":
            params["ipvs_scheduler"] = draw(st.sampled_from([None, "rr", "wrr", "sh"]))
            params["ipvs_strict_arp"] = draw(st.sampled_from([None, True, False]))
        params["masquerade_all"] = draw(st.sampled_from([None, True, False]))
        params["extra_args"] = draw(
            st.dictionaries(st.sampled_from(["v", "feature-gates", "odd"]), st.sampled_from(["3", "B=true", "yes", "1.10"]), max_size=2)
        )
    return params


def expected_args(before, params):
    """The flags RKE should read afterwards, computed from the request alone."""
    args = dict(before)
    if params["state"] == "absent":
        for key in list(args):
            if key == "proxy-mode" or key.startswith("ipvs-"):
                del args[key]
        return args
    if params["proxy_mode"] != "ipvs":
        args = {k: v for k, v in args.items() if not k.startswith("ipvs-")}
    args["proxy-mode"] = params["proxy_mode"]
    for option, flag in (("ipvs_scheduler", "ipvs-scheduler"), ("ipvs_strict_arp", "ipvs-strict-arp"), ("masquerade_all", "masquerade-all")):
        value = params.get(option)
        if value is not None:
            args[flag] = str(value).lower() if isinstance(value, bool) else value
    args.update(params.get("extra_args") or {})
    return args


def comments(lines):
    return [line for line in lines if line.lstrip().startswith("#")]


def without_comments(lines):
    return [line for line in lines if not line.lstrip().startswith("#")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_files(), requests())
def test_generated_files(case, params):
    text, existing = case
    result = patch(text, "cluster.yml", build_request(params))
    after = result["text"]

    assert extra_args(after) == expected_args(extra_args(text), params)
    assert result["extra_args"] == extra_args(after)
    # Nothing outside the stanza moved: compare with the services line normalised where the patch had to open it.
    view = rke_view(text) or {}
    before_lines = text.replace("services: {}", "services:").replace("kubeproxy: {}", "kubeproxy:")
    if result["changed"]:
        outside_before = outside_stanza(before_lines)[0]
        outside_after = outside_stanza(after, with_new_services="services" not in view)[0]
        # A column-0 comment among flags that all went away now trails the stanza, where the indentation-based
        # reader counts it as outside: compare content lines, and check that every comment line is still there.
        assert without_comments(outside_after) == without_comments(outside_before)
        assert sorted(comments(after.splitlines())) == sorted(comments(text.splitlines()))
    else:
        assert after == text
    if "\r\n" in text:
        assert "\n" not in after.replace("\r\n", "")
    # Windows workers never inherit IPVS.
    final = kubeproxy(after)
    if params.get("windows_proxy_mode") and extra_args(after).get("proxy-mode") == "ipvs":
        assert (final.get("win_extra_args") or {}).get("proxy-mode") not in (None, "ipvs")

    again = patch(after, "cluster.yml", build_request(params))
    assert again["changed"] is False
    assert again["text"] == after
