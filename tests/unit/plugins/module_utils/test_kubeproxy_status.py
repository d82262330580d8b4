"""Reading kube-proxy's account of its mode from its log, in the wordings of the Kubernetes versions RKE ships.

Wordings from docs/research/rke-kube-proxy.md B2; real logs from docs/research/samples 12 (traefik/traefik#9263) and
13 (kubernetes/kubernetes#61074), read verbatim from the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._kubeproxy_status import (
    docker_time_ns,
    kubernetes_service,
    log_since,
    metrics_url,
    problems,
    read_log,
    recent_errors,
    split_docker_log,
    virtual_servers,
)

SAMPLES = Path(__file__).resolve().parents[4] / "docs" / "research" / "samples"

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
    'E1121 06:50:00.123456       1 run.go:74] "command failed" err="can\'t use the IPVS proxier: IPVS proxier will not be used because '
    'the following required kernel modules are not loaded: [ip_vs_wrr]"\n'
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

V1_28_NOT_SUPPORTED = (
    'E1121 06:50:00.123456       1 server.go:556] "Error running ProxyServer" err="can\'t use the IPVS proxier: Ipvs not supported"\n'
    'E1121 06:50:00.123470       1 run.go:74] "command failed" err="can\'t use the IPVS proxier: Ipvs not supported"\n'
)
V1_28_DUMMY_VS = (
    'E1121 06:50:00.123400       1 proxier.go:617] "Could not create dummy VS" err="no such file or directory" scheduler="lc"\n'
    'E1121 06:50:00.123456       1 server.go:556] "Error running ProxyServer" err="can\'t use the IPVS proxier: no such file or directory"\n'
)


def test_1_27_reason_ipvs_not_supported_is_named():
    log = read_log(V1_28_NOT_SUPPORTED)
    assert log["mode"] == "refused"
    assert log["reasons"] == ["Ipvs not supported"]
    found = problems("ipvs", facts(log=log, proxy_mode=None, proxy_mode_error="connection refused"))
    assert found[:2] == ["kube-proxy refused IPVS mode and exits (Kubernetes 1.26 and later do not fall back to iptables)", "Ipvs not supported"]


def test_1_27_reason_dummy_virtual_server_names_the_scheduler_once():
    log = read_log(V1_28_DUMMY_VS)
    assert log["mode"] == "refused"
    assert log["reasons"] == [
        "kube-proxy could not create its test virtual server with scheduler lc (can the kernel load ip_vs_lc?): no such file or directory"
    ]


# --- real logs (docs/research/samples, verbatim) -------------------------------------------------------------------


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


# --- docker's times and logs -----------------------------------------------------------------------------------------


def test_docker_time_ns():
    assert docker_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert docker_time_ns("2024-05-01T12:00:03.123456789Z") == 1_714_564_803_123_456_789
    assert docker_time_ns("2024-05-01T14:00:03.123456789+02:00") == 1_714_564_803_123_456_789
    assert docker_time_ns("0001-01-01T00:00:00Z") is None  # Go's zero time: never happened
    assert docker_time_ns("") is None
    assert docker_time_ns("yesterday") is None


@pytest.mark.parametrize(
    ("started", "finished", "since"),
    [
        # One start only: the whole log is that start's.
        ("2024-05-01T12:00:03.5Z", "0001-01-01T00:00:00Z", None),
        # Runs again after a stop an hour before: from a second before its start.
        ("2024-05-01T12:00:03.5Z", "2024-05-01T11:00:00Z", "1714564802.500000000"),
        # Restarted 0.2 s after the previous run ended: not before the middle of that gap.
        ("2024-05-01T12:00:03.5Z", "2024-05-01T12:00:03.3Z", "1714564803.400000000"),
        # Exited (or waiting to restart) after its last start: from a second before it.
        ("2024-05-01T12:00:03.5Z", "2024-05-01T12:00:04Z", "1714564802.500000000"),
        ("", "", None),
    ],
    ids=["one-start", "restarted", "quick-restart", "exited", "unknown"],
)
def test_log_since(started, finished, since):
    assert log_since(started, finished) == since


def test_split_docker_log_orders_both_streams_and_keeps_docker_s_own_errors_apart():
    output = (
        "2024-05-01T12:00:03.000000002Z second\n"
        "Error response from daemon: configured logging driver does not support reading\n"
        "2024-05-01T12:00:03.000000001Z first\n"
        "2024-05-01T12:00:03.000000003Z \n"
    )
    assert split_docker_log(output) == (["first", "second", ""], ["Error response from daemon: configured logging driver does not support reading"])
    # A line is what ends with \n, whatever else it holds.
    assert split_docker_log("2024-05-01T12:00:03.000000001Z a\rb\x0cc\n") == (["a\rb\x0cc"], [])


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:10249", "http://127.0.0.1:10249/proxyMode"),
        ("0.0.0.0:10249", "http://127.0.0.1:10249/proxyMode"),
        ("0.0.0.0", "http://127.0.0.1:10249/proxyMode"),
        (":10250", "http://127.0.0.1:10250/proxyMode"),
        ("10.0.0.11:9999", "http://10.0.0.11:9999/proxyMode"),
        ("[::]:10249", "http://[::1]:10249/proxyMode"),
        ("[fd00::11]:10249", "http://[fd00::11]:10249/proxyMode"),
        ("::", "http://[::1]:10249/proxyMode"),
        ("", None),
        (None, None),
    ],
)
def test_metrics_url(address, url):
    assert metrics_url(address) == url


@pytest.mark.parametrize("address", ["127.0.0.1:http", "host:99999", "a:b:c:d:e:g", "[::1"])
def test_metrics_url_refuses_what_is_not_host_port(address):
    with pytest.raises(ValueError):
        metrics_url(address)


def test_recent_errors_name_each_error_once_latest_last():
    crash_loop = "".join(V1_28_NOT_SUPPORTED.replace("06:50:00", "06:5%d:00" % minute) for minute in range(6))
    other = 'E1121 06:56:30.000001       1 reflector.go:1] "Failed to list" err="timeout"\n'
    found = recent_errors(crash_loop + other + "I1121 06:57:00.0       1 x.go:1] fine\n")
    assert [line.split("] ", 1)[1] for line in found] == [
        '"Error running ProxyServer" err="can\'t use the IPVS proxier: Ipvs not supported"',
        '"command failed" err="can\'t use the IPVS proxier: Ipvs not supported"',
        '"Failed to list" err="timeout"',
    ]
    assert found[0].startswith("E1121 06:55:00")  # the latest of its kind
    assert recent_errors(crash_loop, limit=1) == [crash_loop.splitlines()[-1]]


# --- The data path and the other mode's leftovers (issue 12) ---------------------------------------------------------

from ansible_collections.rkeops.ipvs.plugins.module_utils import _kubeproxy_status as status  # noqa: E402


@pytest.mark.parametrize(("address", "split"), [("10.43.0.1:443", ("10.43.0.1", 443)), ("[fd00:43::1]:443", ("fd00:43::1", 443))])
def test_split_address(address, split):
    assert status.split_address(address) == split


def test_data_path_problem_names_the_address_only_when_unanswered():
    assert status.data_path_problems({"checked": True, "address": "10.43.0.1:443", "answered": True, "error": ""}) == []
    assert status.data_path_problems({"checked": False, "address": "10.43.0.1:443", "answered": None, "error": ""}) == []
    assert status.data_path_problems({"checked": True, "address": "10.43.0.1:443", "answered": False, "error": "timed out"}) == [
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
    assert status.leftovers_summary(found) == (
        "filter: 1 chain, 1 rule; nat: 2 chains; 4 ipsets (KUBE-CLUSTER-IP, KUBE-LOOP-BACK, KUBE-NODE-PORT-TCP, ...); 1 interface (kube-ipvs0)"
    )
    leftovers = {"checked": True, "mode": "iptables", "count": 9, "found": found, "error": ""}
    (problem,) = status.leftover_problems(leftovers, "problem")
    assert problem.startswith("9 leftovers of iptables mode (filter: 1 chain, 1 rule; nat: 2 chains;")
    assert status.leftover_problems(leftovers, "report") == []
    assert status.leftover_problems(dict(leftovers, count=0), "problem") == []
    assert status.leftover_problems({"checked": False, "mode": "", "count": 0, "found": {}, "error": ""}, "problem") == []
