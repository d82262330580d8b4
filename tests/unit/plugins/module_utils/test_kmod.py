"""Kernel-module bookkeeping: /proc/modules, modules.builtin, versions, the persisted file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import (
    HEADER,
    distribution,
    kernel_version,
    os_family,
    parse_modules_builtin,
    parse_os_release,
    parse_persist_file,
    parse_proc_modules,
    render_persist_file,
    unique,
    version_below,
)
from ansible_collections.rkeops.ipvs.plugins.module_utils._kubeproxy import SCHEDULERS

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
    [("5.8.18", "5.9", True), ("5.9.0", "5.9", False), ("5.10.0", "5.9", False), ("4.0.9", "4.1", True), ("6.1.0", "4.1", False)],
)
def test_version_below(version, limit, below):
    assert version_below(version, limit) is below


def test_persist_file_round_trip():
    text = render_persist_file(["ip_vs", "nf_conntrack"], ["ipvsadm", "ipset", "ipset"])
    assert text.splitlines()[: len(HEADER)] == list(HEADER)
    assert "# installed-packages: ipset ipvsadm\n" in text
    assert text.endswith("ip_vs\nnf_conntrack\n")
    assert parse_persist_file(text) == (["ip_vs", "nf_conntrack"], ["ipset", "ipvsadm"])


def test_persist_file_without_packages_has_no_packages_line():
    text = render_persist_file(["ip_vs"], [])
    assert "installed-packages" not in text
    assert parse_persist_file(text) == (["ip_vs"], [])


def test_parse_persist_file_reads_modules_load_d_syntax():
    # modules-load.d(5): '#' and ';' start comments; the kernel treats '-' and '_' alike.
    assert parse_persist_file("; old\n\n ip-vs \n# x\nip_vs_rr\n") == (["ip_vs", "ip_vs_rr"], [])


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


OS_RELEASES = {
    "debian": ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n', "Debian", "Debian"),
    "ubuntu": ('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n', "Debian", "Ubuntu"),
    "rocky": ('NAME="Rocky Linux"\nVERSION_ID="9.3"\nID="rocky"\nID_LIKE="rhel centos fedora"\n', "RedHat", "Rocky"),
    "opensuse": ('NAME="openSUSE Leap"\nVERSION_ID="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "Suse", "openSUSE Leap"),
    "arch": ('NAME="Arch Linux"\nID=arch\n', "", "Arch Linux"),
}


@pytest.mark.parametrize("name", OS_RELEASES)
def test_os_family_and_distribution_from_os_release(name):
    text, family, dist = OS_RELEASES[name]
    release = parse_os_release(text)
    assert os_family(release) == family
    assert distribution(release) == dist
