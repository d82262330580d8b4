"""What services.kubeproxy should hold after a request: flags, binds and the Windows guard."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_request import build_request
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_stanza import Stanza
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_target import DELETE, bind_target, same_flag, target
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml


def target_of(stanza_lines, **params):
    text = "services:\n  kubeproxy:\n" + "".join("    %s\n" % line for line in stanza_lines)
    warnings = []
    args, binds, win = target(Stanza(ClusterYml(text, "cluster.yml")), build_request(params), warnings)
    return dict(args), binds, (win if win in (None, DELETE) else dict(win)), warnings


def test_flags_are_set_kept_and_removed():
    args, binds, _win, warnings = target_of(["extra_args:", "  v: 2", "  ipvs-scheduler: rr", "  masquerade-all: 'True'"], masquerade_all=True)
    assert args == {"v": "2", "ipvs-scheduler": "rr", "masquerade-all": "True", "proxy-mode": "ipvs"}  # True is true to Go
    assert binds is None and warnings == []
    args, _binds, _win, _warnings = target_of(["extra_args:", "  proxy-mode: ipvs", "  ipvs-scheduler: rr", "  v: 2"], state="absent")
    assert args == {"v": "2"}


def test_yaml11_words_are_reported_or_fixed():
    lines = ["extra_args:", "  proxy-mode: ipvs", "  masquerade-all: on", "win_extra_args: {a: b}"]
    args, _binds, _win, warnings = target_of(lines)
    assert args["masquerade-all"] == "on"
    assert warnings == [
        "cluster.yml: line 5, column 23: services.kubeproxy.extra_args.masquerade-all is on: RKE hands that text to kube-proxy,"
        " which rejects it; write true (or set fix_yaml11_booleans=true)"
    ]
    args, _binds, _win, warnings = target_of(lines, fix_yaml11_booleans=True)
    assert args["masquerade-all"] == "true" and warnings == []


def test_extra_args_array_clash_is_reported():
    _args, _binds, _win, warnings = target_of(["extra_args_array:", "  proxy-mode: [iptables]"], windows_proxy_mode="")
    assert len(warnings) == 1 and "extra_args_array also sets proxy-mode" in warnings[0]


def test_lib_modules_binds_are_reported_removed_or_warned_when_added():
    lines = ["extra_binds:", "  - /usr/lib/modules:/lib/modules/", "  - /a:/a"]
    _args, binds, _win, warnings = target_of(lines, windows_proxy_mode="")
    assert binds is None and "line 4" in warnings[0] and "duplicate mount point" in warnings[0]
    _args, binds, _win, warnings = target_of(lines, windows_proxy_mode="", remove_lib_modules_binds=True)
    assert binds == ["/a:/a"] and warnings == []
    _args, binds, _win, warnings = target_of([], windows_proxy_mode="", extra_binds=["/lib/modules:/lib/modules:ro"])
    assert binds == ["/lib/modules:/lib/modules:ro"] and "already mounts" in warnings[0]


def test_windows_guard_copies_inherited_flags_and_its_undo_removes_exactly_that():
    _args, _binds, win, _warnings = target_of(["extra_args:", "  v: 2", "  ipvs-scheduler: rr"])
    assert win == {"v": "2", "proxy-mode": "kernelspace"}
    guarded = ["extra_args:", "  proxy-mode: ipvs", "  v: 2", "win_extra_args:", "  v: 2", "  proxy-mode: kernelspace"]
    assert target_of(guarded, state="absent")[2] is DELETE
    edited = guarded + ["  feature-gates: A=true"]
    assert target_of(edited, state="absent")[2] is None  # someone changed it: leave it


def test_windows_ipvs_is_reported():
    _args, _binds, win, warnings = target_of(["win_extra_args:", "  proxy-mode: ipvs"])
    assert win is None and "Windows workers cannot run" in warnings[0]


@pytest.mark.parametrize(("bind", "container"), [("/a:/b", "/b"), ("/a:/b/:ro", "/b"), ("/a:/", "/"), ("/a", None)])
def test_bind_target(bind, container):
    assert bind_target(bind) == container


def test_same_flag_follows_go_parse_bool():
    assert same_flag("1", "true") and same_flag("F", "false") and not same_flag("yes", "true")
