"""_leftovers_node: what ipvsadm and ipset print, read back, and which iptables backends a node has."""

from __future__ import annotations

from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_node import (
    backend_commands,
    ipvsadm_args,
    parse_ipset_save,
    parse_ipvsadm_save,
)

# `ipvsadm -S -n` on an IPVS node: virtual servers (-A), their real servers (-a), a fwmark service (keepalived's).
IPVSADM_SAVE = """-A -t 10.43.0.1:443 -s rr
-a -t 10.43.0.1:443 -r 192.0.2.10:6443 -m -w 1
-A -u 10.43.0.10:53 -s rr
-a -u 10.43.0.10:53 -r 10.42.0.5:53 -m -w 1
-A -t [fd00:43::1]:443 -s rr
-A -f 5 -s wlc
"""
# `ipset save`: a hash:ip,port set with a member, a bitmap:port set, an empty set.
IPSET_SAVE = """create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1d8ad7a6
add KUBE-CLUSTER-IP 10.43.0.1,tcp:443
add KUBE-CLUSTER-IP 10.43.0.10,udp:53
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
"""


def test_parse_ipvsadm_save_lists_virtual_servers_not_real_ones():
    assert parse_ipvsadm_save(IPVSADM_SAVE) == ["TCP 10.43.0.1:443", "UDP 10.43.0.10:53", "TCP [fd00:43::1]:443", "FWM 5"]
    assert parse_ipvsadm_save("") == []


def test_ipvsadm_args_delete_what_was_read():
    assert ipvsadm_args("TCP 10.43.0.1:443") == ["-D", "-t", "10.43.0.1:443"]
    assert ipvsadm_args("UDP 10.43.0.10:53") == ["-D", "-u", "10.43.0.10:53"]
    assert ipvsadm_args("SCTP 10.43.0.7:9000") == ["-D", "--sctp-service", "10.43.0.7:9000"]


def test_parse_ipset_save_gives_each_set_its_members():
    assert parse_ipset_save(IPSET_SAVE) == {
        "KUBE-CLUSTER-IP": ["10.43.0.1,tcp:443", "10.43.0.10,udp:53"],
        "KUBE-NODE-PORT-TCP": ["30080"],
        "KUBE-LOOP-BACK": [],
    }


class Node:
    """get_bin_path over a set of installed commands, and `iptables --version`."""

    def __init__(self, installed, version=""):
        self.installed = installed
        self.version = version

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/" + name if name in self.installed else None

    def run_command(self, args, **_kwargs):
        assert args == ["/usr/sbin/iptables", "--version"]
        return 0, self.version, ""


def test_backend_commands_prefers_the_suffixed_names():
    both = {"iptables-legacy-save", "iptables-legacy-restore", "iptables-nft-save", "iptables-nft-restore", "iptables-save", "iptables-restore"}
    assert backend_commands(Node(both)) == {
        "legacy": ("/usr/sbin/iptables-legacy-save", "/usr/sbin/iptables-legacy-restore"),
        "nft": ("/usr/sbin/iptables-nft-save", "/usr/sbin/iptables-nft-restore"),
    }


def test_backend_commands_asks_plain_iptables_which_backend_it_is():
    plain = {"iptables", "iptables-save", "iptables-restore"}
    commands = ("/usr/sbin/iptables-save", "/usr/sbin/iptables-restore")
    assert backend_commands(Node(plain, "iptables v1.8.9 (nf_tables)\n")) == {"nft": commands}
    assert backend_commands(Node(plain, "iptables v1.8.9 (legacy)\n")) == {"legacy": commands}
    assert backend_commands(Node(plain, "iptables v1.4.21\n")) == {"legacy": commands}
    assert backend_commands(Node({"iptables"})) == {}
