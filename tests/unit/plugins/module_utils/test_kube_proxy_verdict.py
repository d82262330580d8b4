"""_kube_proxy_verdict: what stands between a node and kube-proxy in the expected mode, in the operator's words.

Real logs from tests/data/samples 12 (traefik/traefik#9263) and 13 (kubernetes/kubernetes#61074), read verbatim
from the files.
"""

from __future__ import annotations

from pathlib import Path

from kube_proxy_lines import V1_24_FALLBACK, V1_24_IPVS, V1_28_NOT_SUPPORTED, V1_28_REFUSED

from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_log import read_log, recent_errors
from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_verdict import data_path_problems, leftover_problems, leftovers_summary, problems

SAMPLES = Path(__file__).resolve().parents[4] / "tests" / "data" / "samples"


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
            kube_ipvs0=False,
            service_listed=False,
        ),
    )
    assert found == [
        "the kube-proxy container is not running (status restarting, 4 restarts)",
        "kube-proxy refused IPVS mode and exits (Kubernetes 1.26 and later do not fall back to iptables)",
        "kernel modules not loaded: ip_vs_wrr",
        "http://127.0.0.1:10249/proxyMode gives no answer (connection refused)",
        "no kube-ipvs0 interface",
        "ipvsadm -Ln does not list the kubernetes service 10.43.0.1:443",
    ]


def test_problems_iptables_expected():
    iptables = facts(log=read_log(V1_24_FALLBACK), proxy_mode="iptables", kube_ipvs0=False, service_listed=False, virtual_servers=[])
    assert problems("iptables", iptables) == []
    assert problems("iptables", facts()) == ["kube-proxy runs in ipvs mode", "http://127.0.0.1:10249/proxyMode answers ipvs"]


def test_problems_no_container():
    assert problems("ipvs", facts(container=dict(exists=False, running=False, status="absent", restart_count=0))) == [
        "no kube-proxy container (has rke up run on this node?)"
    ]


# --- Kubernetes 1.27 and later: the reasons kube-proxy gives instead of a module list ------------------------------


def test_1_27_reason_ipvs_not_supported_is_named():
    log = read_log(V1_28_NOT_SUPPORTED)
    assert log["mode"] == "refused"
    assert log["reasons"] == ["Ipvs not supported"]
    found = problems("ipvs", facts(log=log, proxy_mode=None, proxy_mode_error="connection refused"))
    assert found[:2] == ["kube-proxy refused IPVS mode and exits (Kubernetes 1.26 and later do not fall back to iptables)", "Ipvs not supported"]


# --- real logs (tests/data/samples, verbatim) -------------------------------------------------------------------


def sample(name: str) -> str:
    path = next(SAMPLES.glob(name + "-*"))
    return "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("# SOURCE:"))


def test_sample_12_ipvs_proxier_as_kube_proxy_1_21_printed_it():
    # traefik/traefik#9263: server_others.go:274] Using ipvs Proxier. (k9s' frame characters and all)
    log = read_log(sample("12"))
    assert log["mode"] == "ipvs"
    assert "server_others.go:274] Using ipvs Proxier." in log["mode_line"]
    assert log["fallback_lines"] == []
    assert problems("ipvs", facts(log=log)) == []


def test_sample_13_iptables_without_a_fallback_is_not_called_one():
    # kubernetes/kubernetes#61074: proxy-mode unset, modprobe ip_vs fails, "Using iptables Proxier." - no IPVS refusal.
    log = read_log(sample("13"))
    assert log["mode"] == "iptables"
    assert log["fallback_lines"] == []
    assert log["missing_modules"] == []
    found = problems("ipvs", facts(log=log, proxy_mode="iptables", kube_ipvs0=False, service_listed=False))
    assert found[:2] == ["kube-proxy runs in iptables mode", "http://127.0.0.1:10249/proxyMode answers iptables"]
    # Its logrus-style error line is a recent error, the lead that is given when no reason is.
    assert recent_errors(sample("13")) == [line for line in sample("13").splitlines() if "level=error" in line]
    found = problems("ipvs", facts(log=dict(log, recent_errors=recent_errors(sample("13"))), proxy_mode="iptables"))
    assert found[-1].startswith("kube-proxy's last error: time=")


# --- /proxyMode is the authority; the log gives evidence and reasons ----------------------------------------------


def test_proxy_mode_answer_decides_when_the_log_no_longer_has_the_proxier_line():
    rotated = dict(read_log("I1121 09:00:00.000000       1 proxier.go:1000] something else\n"), start_lines=1)
    assert rotated["mode"] == "none"
    assert problems("ipvs", facts(log=rotated)) == []
    found = problems("ipvs", facts(log=rotated, proxy_mode=None, proxy_mode_error="timed out"))
    assert found == [
        "kube-proxy's log since its start does not say which proxier it uses (not yet, or rotated away)",
        "http://127.0.0.1:10249/proxyMode gives no answer (timed out)",
    ]
    empty = dict(read_log(""), start_lines=0)
    assert problems("ipvs", facts(log=empty, proxy_mode=None, proxy_mode_error="timed out"))[0] == (
        "kube-proxy has logged nothing since its start (or those lines were rotated away)"
    )


def test_metrics_server_turned_off_the_log_decides():
    off = dict(proxy_mode=None, proxy_mode_url=None, proxy_mode_error="kube-proxy's metrics server is turned off (metrics_address is empty)")
    assert problems("ipvs", facts(**off)) == []
    assert problems("ipvs", facts(log=read_log(V1_24_FALLBACK), **off))[:2] == ["kube-proxy fell back to iptables", "kernel modules not loaded: ip_vs"]
    assert problems("iptables", facts(**off)) == ["kube-proxy's log says it uses the ipvs proxier"]


# --- The data path and the other mode's leftovers -------------------------------------------------------------------


def test_data_path_problem_names_the_address_only_when_unanswered():
    assert data_path_problems({"checked": True, "address": "10.43.0.1:443", "answered": True, "error": ""}) == []
    assert data_path_problems({"checked": False, "address": "10.43.0.1:443", "answered": None, "error": ""}) == []
    assert data_path_problems({"checked": True, "address": "10.43.0.1:443", "answered": False, "error": "timed out"}) == [
        "the kubernetes service 10.43.0.1:443 did not answer from this node (timed out)"
    ]


def test_leftovers_summary_and_problem():
    found = {
        "iptables": {
            "nat": {"chains": ["KUBE-SVC-A", "KUBE-SEP-B"], "rules": []},
            "filter": {"chains": ["KUBE-SERVICES"], "rules": ["-A OUTPUT -j KUBE-SERVICES"]},
        },
        "ipsets": ["KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-UDP"],
        "ipvs_services": [],
        "interfaces": ["kube-ipvs0"],
    }
    assert leftovers_summary(found) == (
        "filter: 1 chain, 1 rule; nat: 2 chains; 4 ipsets (KUBE-CLUSTER-IP, KUBE-LOOP-BACK, KUBE-NODE-PORT-TCP, ...); 1 interface (kube-ipvs0)"
    )
    leftovers = {"checked": True, "mode": "iptables", "count": 9, "found": found, "error": ""}
    (problem,) = leftover_problems(leftovers, "problem")
    assert problem.startswith("9 leftovers of iptables mode (filter: 1 chain, 1 rule; nat: 2 chains;")
    assert leftover_problems(leftovers, "report") == []
    assert leftover_problems(dict(leftovers, count=0), "problem") == []
    assert leftover_problems({"checked": False, "mode": "", "count": 0, "found": {}, "error": ""}, "problem") == []
