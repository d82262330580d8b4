"""_kube_proxy_log: kube-proxy's account of its mode read from its log, in the wordings of the Kubernetes versions
RKE ships, and docker's times and logs.

Wordings from docs/research/rke-kube-proxy.md B2.
"""

from __future__ import annotations

import pytest
from kube_proxy_lines import (
    IPSET_MISSING,
    V1_20_FALLBACK,
    V1_20_IPVS,
    V1_24_FALLBACK,
    V1_24_IPVS,
    V1_28_DUMMY_VS,
    V1_28_NOT_SUPPORTED,
    V1_28_REFUSED,
)

from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_log import docker_time_ns, log_since, read_log, recent_errors, split_docker_log


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


def test_1_27_reason_dummy_virtual_server_names_the_scheduler_once():
    log = read_log(V1_28_DUMMY_VS)
    assert log["mode"] == "refused"
    assert log["reasons"] == [
        "kube-proxy could not create its test virtual server with scheduler lc (can the kernel load ip_vs_lc?): no such file or directory"
    ]


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
