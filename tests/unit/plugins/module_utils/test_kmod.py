"""Kernel-module bookkeeping: /proc/modules, modules.builtin, module states, conntrack, versions, the persisted file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_patch import SCHEDULERS
from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    BUILTIN,
    HEADER,
    LOADABLE,
    LOADED,
    MISSING,
    conntrack_module,
    is_version,
    kernel_version,
    modinfo_resolver,
    module_state,
    module_states,
    parse_modules_builtin,
    parse_persist_file,
    parse_proc_modules,
    render_persist_file,
    unique,
    version_below,
)

ROLE = Path(__file__).resolve().parents[4] / "roles" / "prereqs"

PROC_MODULES = """\
ip_vs_sh 12288 0 - Live 0x0000000000000000
ip_vs_rr 12288 0 - Live 0x0000000000000000
ip_vs 200704 4 ip_vs_sh,ip_vs_rr, Live 0x0000000000000000
nf_conntrack 188416 1 ip_vs, Live 0x0000000000000000
"""


def test_parse_proc_modules():
    assert parse_proc_modules(PROC_MODULES) == {"ip_vs_sh", "ip_vs_rr", "ip_vs", "nf_conntrack"}
    assert parse_proc_modules("") == set()


def test_parse_modules_builtin_normalises_names():
    text = "kernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/nf_conntrack.ko\nkernel/drivers/net/virtio-net.ko\n\n"
    assert parse_modules_builtin(text) == {"ip_vs", "nf_conntrack", "virtio_net"}


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.1.0-28-amd64", "6.1.0"),
        ("6.12.107+deb13-amd64", "6.12.107"),
        ("4.18.0-513.el8.x86_64", "4.18.0"),
        ("5.15.0-1050-azure", "5.15.0"),
        ("5.9", "5.9.0"),
        ("weird", ""),
    ],
)
def test_kernel_version(release, version):
    assert kernel_version(release) == version


@pytest.mark.parametrize(
    ("version", "limit", "below"),
    [("5.8.18", "5.9", True), ("5.9.0", "5.9", False), ("5.10.0", "5.9", False), ("4.0.9", "4.1", True), ("6.1.0", "4.1", False), ("4.18.0", "4.9", False)],
)
def test_version_below(version, limit, below):
    assert version_below(version, limit) is below


@pytest.mark.parametrize(("text", "ok"), [("5.9", True), ("4.18.0", True), ("6", True), ("", False), ("5.9-rc1", False), ("v5.9", False), ("5..9", False)])
def test_is_version_accepts_dotted_numbers_only(text, ok):
    assert is_version(text) is ok


def available(*names, aliases=None):
    """A stand-in for modinfo: the module names it knows, and aliases resolved to another module's name."""
    asked = []

    def resolve(name):
        asked.append(name)
        if name in (aliases or {}):
            return aliases[name]
        return name if name in names else None

    resolve.asked = asked
    return resolve


def test_module_state_vocabulary():
    resolve = available("ip_vs_rr", "nf_conntrack", aliases={"nf_conntrack_ipv4": "nf_conntrack"})
    loaded, builtin = {"ip_vs"}, {"nf_conntrack"}
    assert module_state("ip_vs", loaded, builtin, resolve) == LOADED
    assert module_state("nf_conntrack", loaded, builtin, resolve) == BUILTIN
    assert module_state("ip_vs_rr", loaded, builtin, resolve) == LOADABLE
    assert module_state("ip_vs_mh", loaded, builtin, resolve) == MISSING
    # An alias of another module: loading it would not list this name in /proc/modules.
    assert module_state("nf_conntrack_ipv4", loaded, builtin, resolve) == MISSING
    assert {LOADED, BUILTIN, LOADABLE, MISSING} == {"loaded", "builtin", "loadable", "missing"}


def test_module_states_ask_modinfo_only_for_modules_the_kernel_lacks():
    resolve = available("ip_vs_sh")
    states = module_states(["ip_vs", "nf_conntrack", "ip_vs_sh"], {"ip_vs"}, {"nf_conntrack"}, resolve)
    assert states == {"ip_vs": "loaded", "nf_conntrack": "builtin", "ip_vs_sh": "loadable"}
    assert list(states) == ["ip_vs", "nf_conntrack", "ip_vs_sh"]
    assert resolve.asked == ["ip_vs_sh"]


@pytest.mark.parametrize(
    ("wanted", "loaded", "builtin", "resolve", "tree", "expected"),
    [
        # Kernels before 4.19 have nf_conntrack_ipv4 as a module of its own.
        ("auto", set(), set(), available("nf_conntrack_ipv4", "nf_conntrack"), True, ("nf_conntrack_ipv4", True)),
        ("auto", {"nf_conntrack_ipv4"}, set(), available(), True, ("nf_conntrack_ipv4", True)),
        ("auto", set(), {"nf_conntrack_ipv4"}, available(), True, ("nf_conntrack_ipv4", True)),
        # 4.19 and later, and RHEL 8.3+ (4.18, merged, the old name kept as an alias).
        ("auto", set(), set(), available("nf_conntrack"), True, ("nf_conntrack", True)),
        ("auto", set(), set(), available("nf_conntrack", aliases={"nf_conntrack_ipv4": "nf_conntrack"}), True, ("nf_conntrack", True)),
        # Nothing to probe (a container): nf_conntrack, said to be a guess.
        ("auto", set(), set(), available("nf_conntrack_ipv4"), False, ("nf_conntrack", False)),
        # A name given is taken as it is, normalised.
        ("nf-conntrack", set(), set(), available(), False, ("nf_conntrack", True)),
    ],
)
def test_conntrack_module_is_probed_not_guessed(wanted, loaded, builtin, resolve, tree, expected):
    assert conntrack_module(wanted, loaded, builtin, resolve, tree) == expected


class FakeModule:
    def __init__(self, out="", rc=0):
        self.calls = []
        self.out, self.rc = out, rc

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/" + name

    def run_command(self, args, **kwargs):
        self.calls.append(args)
        return self.rc, self.out, ""


def test_modinfo_resolver_runs_modinfo_once_per_name(monkeypatch):
    monkeypatch.setattr(os.path, "isdir", lambda path: path == "/lib/modules/6.1.0-28-amd64")
    module = FakeModule(out="nf_conntrack\n")
    resolve = modinfo_resolver(module, "6.1.0-28-amd64")
    assert resolve("nf-conntrack-ipv4") == "nf_conntrack"
    assert resolve("nf-conntrack-ipv4") == "nf_conntrack"
    assert module.calls == [["/usr/sbin/modinfo", "-k", "6.1.0-28-amd64", "-F", "name", "nf-conntrack-ipv4"]]


def test_modinfo_resolver_without_a_module_tree_runs_nothing(monkeypatch):
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    module = FakeModule()
    assert modinfo_resolver(module, "6.1.0-28-amd64")("ip_vs") is None
    assert module.calls == []


def test_modinfo_resolver_unknown_module(monkeypatch):
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    assert modinfo_resolver(FakeModule(rc=1), "6.1.0-28-amd64")("ip_vs_nope") is None


def test_persist_file_round_trip():
    text = render_persist_file(["ip_vs", "nf_conntrack"], {"installed-packages": ["ipset", "ipvsadm"]})
    assert text.splitlines()[: len(HEADER)] == list(HEADER)
    assert "# installed-packages: ipset ipvsadm\n" in text
    assert text.endswith("ip_vs\nnf_conntrack\n")
    assert parse_persist_file(text) == (["ip_vs", "nf_conntrack"], {"installed-packages": ["ipset", "ipvsadm"]})


def test_persist_file_notes_are_the_callers_data():
    # Kept as given (the caller sorts if it wants), keys in sorted order, an empty note left out.
    text = render_persist_file(["ip_vs"], {"zeta": ["b", "a"], "alpha": ["x"], "empty": []})
    assert [line for line in text.splitlines() if line.startswith("#")][len(HEADER) :] == ["# alpha: x", "# zeta: b a"]
    assert parse_persist_file(text) == (["ip_vs"], {"alpha": ["x"], "zeta": ["b", "a"]})


def test_persist_file_written_before_notes_reads_the_same():
    # The header line the role wrote before notes existed is the installed-packages note.
    text = "\n".join(HEADER) + "\n# installed-packages: ipset ipvsadm\nip_vs\nnf_conntrack\n"
    assert parse_persist_file(text) == (["ip_vs", "nf_conntrack"], {"installed-packages": ["ipset", "ipvsadm"]})
    assert render_persist_file(["ip_vs", "nf_conntrack"], {"installed-packages": ["ipset", "ipvsadm"]}) == text


def test_persist_file_without_notes_has_no_note_line():
    text = render_persist_file(["ip_vs"], {})
    assert [line for line in text.splitlines() if line.startswith("#")] == list(HEADER)
    assert parse_persist_file(text) == (["ip_vs"], {})


def test_parse_persist_file_reads_modules_load_d_syntax():
    # modules-load.d(5): '#' and ';' start comments; the kernel treats '-' and '_' alike.
    assert parse_persist_file("; old\n\n ip-vs \n# x\nip_vs_rr\n") == (["ip_vs", "ip_vs_rr"], {})


def test_unique_keeps_first_order():
    assert unique(["ip_vs", "ip-vs", "ip_vs_rr", "", "ip_vs_rr"]) == ["ip_vs", "ip_vs_rr"]


def test_role_scheduler_choices_match_kube_proxy_schedulers():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    choices = specs["argument_specs"]["main"]["options"]["prereqs_ipvs_scheduler"]["choices"]
    assert choices == ["", *SCHEDULERS]


def test_role_defaults_match_argument_specs():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
