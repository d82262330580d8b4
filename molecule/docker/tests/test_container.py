"""What the role leaves in a container with prereqs_manage_kernel: false, and what a container cannot do."""

import pytest

PERSIST_FILE = "/etc/modules-load.d/rkeops-ipvs.conf"


@pytest.mark.parametrize("package", ["ipset", "ipvsadm"])
def test_package_is_installed(host, package):
    assert host.package(package).is_installed


def test_persisted_file_without_probing(host):
    lines = host.file(PERSIST_FILE).content_string.splitlines()
    assert "# installed-packages: ipset ipvsadm" in lines
    # No module tree to probe: the conntrack module falls back to nf_conntrack.
    assert [line for line in lines if not line.startswith("#")] == ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]


def test_ipvsadm_cannot_reach_ipvs_from_a_container(host):
    # The host kernel has no IPVS: ipvsadm is installed but the kernel side is missing, which is why
    # kernel modules are tested in the VM scenarios.
    result = host.run("ipvsadm -Ln")
    assert result.rc != 0
    assert "Protocol not available" in result.stderr or "modprobe" in result.stderr
