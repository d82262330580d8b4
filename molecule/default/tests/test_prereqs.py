"""What rkeops.ipvs.prereqs leaves on a lab VM, read on the VM itself (testinfra through Molecule's inventory).

Molecule runs this file twice: after converge and idempotence, and again after the side effect rebooted the
VMs without the role running, so the module checks also prove the persisted file works at boot.
"""

import pytest

MODULES = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
PERSIST_FILE = "/etc/modules-load.d/rkeops-ipvs.conf"
# The Debian release each platform of molecule.yml boots, and its kernel series.
KERNELS = {"node1": "6.1.", "node2": "6.12.", "node3": "5.10."}
# prepare.yml leaves this marker where it emptied apt's lists (molecule.yml: lab_empty_apt_lists).
EMPTIED_MARKER = "/var/tmp/rkeops-lab-apt-lists-emptied"


def loaded_modules(host):
    return {line.split()[0] for line in host.file("/proc/modules").content_string.splitlines() if line}


@pytest.mark.parametrize("module", MODULES)
def test_module_is_loaded(host, module):
    assert module in loaded_modules(host)


def test_each_vm_runs_its_own_debian_kernel(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    assert host.check_output("uname -r").startswith(KERNELS[name])


def test_persisted_file_lists_the_modules(host):
    persisted = host.file(PERSIST_FILE)
    assert persisted.is_file
    assert persisted.user == "root"
    assert persisted.mode == 0o644
    lines = persisted.content_string.splitlines()
    assert lines[0].startswith("# Managed by Ansible (rkeops.ipvs.prereqs)")
    # The lab image has neither package: the role installed both and recorded them for a rollback.
    assert "# installed-packages: ipset ipvsadm" in lines
    assert [line for line in lines if not line.startswith("#")] == MODULES


def test_systemd_modules_load_accepts_the_file(host):
    # A module name the kernel does not know would make this unit fail at boot.
    assert host.check_output("systemctl show --property=Result systemd-modules-load.service") == "Result=success"


@pytest.mark.parametrize("package", ["ipset", "ipvsadm"])
def test_package_is_installed(host, package):
    assert host.package(package).is_installed


def test_ipvsadm_talks_to_the_kernel(host):
    with host.sudo():
        listing = host.check_output("ipvsadm -Ln")
    assert listing.startswith("IP Virtual Server version")
    assert host.file("/proc/net/ip_vs").exists


def test_ipset_talks_to_the_kernel(host):
    with host.sudo():
        host.check_output("ipset create rkeops-test hash:ip && ipset list rkeops-test && ipset destroy rkeops-test")


def test_emptied_apt_lists_were_refreshed_by_the_role(host):
    """On the node that started with empty apt lists, apt wrote package indexes after prepare emptied them: the role
    refreshed the lists before installing (the packages' own test above shows the install worked). The other nodes
    kept their image's lists."""
    emptied = bool(host.ansible.get_variables().get("lab_empty_apt_lists", False))
    marker = host.file(EMPTIED_MARKER)
    assert marker.exists == emptied
    # Change times: apt gives downloaded files the mirror's Last-Modified time as their mtime.
    listing = host.check_output("find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -printf '%C@\\n'")
    index_times = [float(line) for line in listing.splitlines() if line]
    assert index_times, "apt's lists hold no package index"
    if emptied:
        emptied_at = float(host.check_output("stat -c %Y " + EMPTIED_MARKER))
        assert min(index_times) >= emptied_at
