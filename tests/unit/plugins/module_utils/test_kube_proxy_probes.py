"""_kube_proxy_probes: the /proxyMode URL, the virtual servers ipvsadm lists, the kubernetes service's address."""

from __future__ import annotations

import pytest

from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_probes import kubernetes_service, metrics_url, split_address, virtual_servers

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


@pytest.mark.parametrize(("address", "split"), [("10.43.0.1:443", ("10.43.0.1", 443)), ("[fd00:43::1]:443", ("fd00:43::1", 443))])
def test_split_address(address, split):
    assert split_address(address) == split
