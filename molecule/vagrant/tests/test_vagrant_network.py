"""The network rule inside the Vagrant scenario's VM (molecule/vagrant), read on the VM through Molecule's inventory.

Its one NIC is QEMU's user network (10.0.2.0/24, gateway 10.0.2.2), and no traffic to a private range other than
that may leave it: the lab box blackholes 10/8, 172.16/12 and 192.168/16 at every boot (rkeops-lab-net-guard,
tests/lab/lab.py), as the lab's other VMs do. Checked only with the lab box in the usernet mode (the mode and the
box come from molecule.yml's platform); a contributor's own box on the provider's network is the contributor's
network, and these tests say so when they are deselected.
"""

import os

import pytest

USERNET = os.environ.get("RKEOPS_VAGRANT_NETWORK") == "usernet"
LAB_BOX = os.environ.get("RKEOPS_VAGRANT_BOX", "").startswith("rkeops-ipvs-lab-")
pytestmark = pytest.mark.skipif(not (USERNET and LAB_BOX), reason="the lab box in the usernet mode only (RKEOPS_VAGRANT_BOX, RKEOPS_VAGRANT_NETWORK)")


@pytest.mark.parametrize("network", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
def test_private_range_is_blackholed(host, network):
    assert f"blackhole {network}" in host.check_output("ip -4 route show type blackhole")


def test_the_only_nic_is_qemus_user_network(host):
    links = [line.split()[0] for line in host.check_output("ip -o -br link").splitlines()]
    assert sorted(link for link in links if link not in ("lo", "lab-svc0") and not link.startswith("docker")) == ["eth0"]
    assert host.check_output("ip -4 -o addr show dev eth0").split()[3].startswith("10.0.2.")
    assert host.check_output("ip -4 route show default").startswith("default via 10.0.2.2 dev eth0")
