"""Reading kube-proxy's account of its mode from its log, in the wordings of the Kubernetes versions RKE ships."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._kubeproxy_status import kubernetes_service, problems, read_log, virtual_servers

# Lines as kube-proxy prints them (klog header, then the message).
V1_20_IPVS = "I0502 13:19:00.699625       1 server_others.go:259] Using ipvs Proxier.\n"
V1_20_FALLBACK = (
    "E0502 13:19:00.699625       1 server_others.go:304] can't determine whether to use ipvs proxy, error: IPVS proxier will not be "
    "used because the following required kernel modules are not loaded: [ip_vs_rr ip_vs_sh]\n"
    "W0502 13:19:00.699625       1 server_others.go:304] Can't use ipvs proxier, trying iptables proxier\n"
    "I0502 13:19:00.702634       1 server_others.go:140] Using iptables Proxier.\n"
)
V1_24_IPVS = 'I1121 06:50:00.123456       1 server_others.go:274] "Using ipvs Proxier"\n'
V1_24_FALLBACK = (
    'E1121 06:50:00.123456       1 server_others.go:259] "Can\'t use the IPVS proxier" err="IPVS proxier will not be used because '
    'the following required kernel modules are not loaded: [ip_vs]"\n'
    'I1121 06:50:00.123456       1 server_others.go:212] "Using iptables Proxier"\n'
)
V1_28_REFUSED = (
    'E1121 06:50:00.123456       1 server.go:558] "Error running ProxyServer" err="can\'t use the IPVS proxier: IPVS proxier will not be '
    'used because the following required kernel modules are not loaded: [ip_vs_wrr]"\n'
    'E1121 06:50:00.123456       1 run.go:74] "command failed" err="can\'t use the IPVS proxier: ..."\n'
)
IPSET_MISSING = (
    'E1121 06:50:00.123456       1 server_others.go:259] "Can\'t use the IPVS proxier" err="error getting ipset version, error: exec: '
    '\\"ipset\\": executable file not found in $PATH"\n'
    'I1121 06:50:00.123456       1 server_others.go:212] "Using iptables Proxier"\n'
)


@pytest.mark.parametrize(
    ("log", "mode", "missing"),
    [
        (V1_20_IPVS, "ipvs", []),
        (V1_20_FALLBACK, "iptables", ["ip_vs_rr", "ip_vs_sh"]),
        (V1_24_IPVS, "ipvs", []),
        (V1_24_FALLBACK, "iptables", ["ip_vs"]),
        (V1_28_REFUSED * 3, "refused", ["ip_vs_wrr"]),
        ("", "none", []),
    ],
    ids=["1.20-ipvs", "1.20-fallback", "1.24-ipvs", "1.24-fallback", "1.28-refused", "empty"],
)
def test_read_log(log, mode, missing):
    read = read_log(log)
    assert read["mode"] == mode
    assert read["missing_modules"] == missing
    assert bool(read["fallback_lines"]) == bool(missing)


def test_the_last_mode_counts_across_restarts():
    assert read_log(V1_24_IPVS + V1_24_FALLBACK)["mode"] == "iptables"
    assert read_log(V1_24_FALLBACK + V1_24_IPVS)["mode"] == "ipvs"


def test_ipset_problem_is_named():
    read = read_log(IPSET_MISSING)
    assert read["mode"] == "iptables"
    assert "executable file not found" in read["ipset_problem"]


IPVSADM = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.43.0.1:443 rr
  -> 10.0.2.15:6443               Masq    1      0          0
UDP  10.43.0.10:53 rr
"""


def test_virtual_servers():
    assert virtual_servers(IPVSADM) == ["TCP 10.43.0.1:443 rr", "UDP 10.43.0.10:53 rr"]
    assert virtual_servers("IP Virtual Server version 1.2.1 (size=4096)\n") == []


@pytest.mark.parametrize(
    ("cidr", "service"),
    [("10.43.0.0/16", "10.43.0.1:443"), ("172.20.0.0/16,fd98::/108", "172.20.0.1:443"), ("fd98::/108", "[fd98::1]:443"), ("10.43.0.7/16", "10.43.0.1:443")],
)
def test_kubernetes_service(cidr, service):
    assert kubernetes_service(cidr, 443) == service


def facts(**overrides):
    base = dict(
        container=dict(exists=True, running=True, status="running", restart_count=0),
        log=read_log(V1_24_IPVS),
        proxy_mode="ipvs",
        proxy_mode_error="",
        proxy_mode_url="http://127.0.0.1:10249/proxyMode",
        kube_ipvs0=True,
        virtual_servers=["TCP 10.43.0.1:443 rr"],
        kubernetes_service="10.43.0.1:443",
        service_listed=True,
    )
    base.update(overrides)
    return base


def test_problems_none_when_ipvs_everywhere():
    assert problems("ipvs", facts()) == []


def test_problems_fallback_names_modules_and_every_missing_proof():
    found = problems("ipvs", facts(log=read_log(V1_24_FALLBACK), proxy_mode="iptables", kube_ipvs0=False, service_listed=False))
    assert found == [
        "kube-proxy fell back to iptables",
        "kernel modules not loaded: ip_vs",
        "http://127.0.0.1:10249/proxyMode answers iptables",
        "no kube-ipvs0 interface",
        "ipvsadm -Ln does not list the kubernetes service 10.43.0.1:443",
    ]


def test_problems_refused_and_restarting():
    found = problems(
        "ipvs",
        facts(
            container=dict(exists=True, running=False, status="restarting", restart_count=4),
            log=read_log(V1_28_REFUSED),
            proxy_mode=None,
            proxy_mode_error="connection refused",
        ),
    )
    assert found[:3] == [
        "the kube-proxy container is not running (status restarting, 4 restarts)",
        "kube-proxy refused to start in IPVS mode",
        "kernel modules not loaded: ip_vs_wrr",
    ]
    assert "answers no answer (connection refused)" in found[3]


def test_problems_iptables_expected():
    iptables = facts(log=read_log(V1_24_FALLBACK), proxy_mode="iptables", kube_ipvs0=False, service_listed=False, virtual_servers=[])
    assert problems("iptables", iptables) == []
    assert problems("iptables", facts()) == ["kube-proxy's log says it uses the ipvs proxier", "http://127.0.0.1:10249/proxyMode answers ipvs"]


def test_problems_no_container():
    assert problems("ipvs", facts(container=dict(exists=False, running=False, status="absent", restart_count=0))) == [
        "no kube-proxy container (has rke up run on this node?)"
    ]
