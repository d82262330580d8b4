"""After the failed preflight: the node is exactly as prepare.yml recorded it."""

from pathlib import Path

NODE_STATE = (Path(__file__).parent.parent / "node_state.sh").read_text()


def test_node_state_is_unchanged(host):
    with host.sudo():
        before = host.file("/root/state-before").content_string
        after = host.check_output("bash -c %s", NODE_STATE)
    assert after.strip() == before.strip()
    # The record itself must show what a change would have touched.
    assert "pkg openssh-server installed" in before
    assert "file /var/lib/apt/lists" in before


def test_no_ipvs_trace(host):
    assert not host.file("/etc/modules-load.d/rkeops-ipvs.conf").exists
    assert not host.package("ipvsadm").is_installed
    assert not host.package("ipset").is_installed
    assert not host.file("/proc/net/ip_vs").exists
