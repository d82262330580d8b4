"""Options -> request: which kube-proxy flags cluster_kubeproxy sets and removes, and which options it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import SCHEDULERS as REEXPORTED
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_request import (
    SCHEDULERS,
    RequestError,
    build_request,
    flag_text,
    parse_duration,
)


def test_present_sets_the_mode_and_the_flags_given_as_kube_proxy_reads_them():
    request = build_request(
        {"ipvs_scheduler": "lc", "ipvs_strict_arp": True, "masquerade_all": False, "ipvs_exclude_cidrs": ["10.0.0.0/8", "fd00::/8"], "ipvs_tcp_timeout": 900}
    )
    assert dict(request["set_args"]) == {
        "proxy-mode": "ipvs",
        "ipvs-scheduler": "lc",
        "ipvs-strict-arp": "true",
        "ipvs-exclude-cidrs": "10.0.0.0/8,fd00::/8",
        "ipvs-tcp-timeout": "900s",
        "masquerade-all": "false",
    }
    assert request["remove_args"] == set() and request["remove_ipvs_flags"] is False
    assert request["windows_proxy_mode"] == "kernelspace"


def test_extra_args_win_and_a_null_removes_the_flag():
    request = build_request({"ipvs_scheduler": "rr", "extra_args": {"ipvs-scheduler": "sh", "v": 2, "masquerade-all": None}})
    assert dict(request["set_args"]) == {"proxy-mode": "ipvs", "ipvs-scheduler": "sh", "v": "2"}
    assert request["remove_args"] == {"masquerade-all"}


def test_absent_removes_what_present_manages():
    request = build_request({"state": "absent", "masquerade_all": True, "extra_args": {"v": 2}, "extra_binds": ["/x:/x"]})
    assert dict(request["set_args"]) == {}
    assert request["remove_args"] == {"proxy-mode", "masquerade-all", "v"}
    assert request["remove_ipvs_flags"] is True and request["proxy_mode"] is None
    assert (request["add_binds"], request["remove_binds"]) == ([], ["/x:/x"])


def test_iptables_drops_the_ipvs_flags_and_an_empty_windows_mode_turns_the_guard_off():
    request = build_request({"proxy_mode": "iptables", "windows_proxy_mode": ""})
    assert request["remove_ipvs_flags"] is True and request["windows_proxy_mode"] is None


@pytest.mark.parametrize(
    ("value", "text", "seconds"), [(900, "900s", 900), ("1m30s", "1m30s", 90), ("1.5h", "1.5h", 5400), ("0", "0s", 0), ("250ms", "250ms", 0.25)]
)
def test_durations_are_go_durations(value, text, seconds):
    assert parse_duration("ipvs_tcp_timeout", value) == (text, seconds * 1e9)


def test_flag_text_and_schedulers():
    assert (flag_text(True), flag_text(False), flag_text(2), flag_text("x")) == ("true", "false", "2", "x")
    assert "rr" in SCHEDULERS and "mh" in SCHEDULERS
    assert REEXPORTED is SCHEDULERS


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ipvs_scheduler": "fastest"}, "ipvs_scheduler=fastest: unknown"),
        ({"ipvs_exclude_cidrs": ["10.0.0.0"]}, "not a CIDR"),
        ({"ipvs_exclude_cidrs": ["10.0.0.0/33"]}, "not a CIDR"),
        ({"ipvs_tcp_timeout": "-5s"}, "must not be negative"),
        ({"ipvs_udp_timeout": "5 minutes"}, "not a Go duration"),
        ({"ipvs_sync_period": "0s"}, "greater than 0"),
        ({"ipvs_sync_period": "10s", "ipvs_min_sync_period": "1m"}, "must not be longer"),
        ({"proxy_mode": "iptables", "ipvs_scheduler": "rr"}, "only apply to proxy_mode=ipvs"),
        ({"extra_args": {"--v": 2}}, "not a kube-proxy flag name"),
        ({"extra_args": {"v": [1]}}, "give a string, number or boolean"),
    ],
)
def test_bad_options_are_refused(params, message):
    with pytest.raises(RequestError, match=message):
        build_request(params)
