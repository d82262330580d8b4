"""kube_proxy_leftovers on real kernels: public dumps of kube-proxy nodes restored in a bookworm VM, per backend.

One VM (tests/lab/lab.py), one ansible-playbook run (tests/vm/leftovers/site.yml) that restores each dump of
tests/data/iptables-dumps into iptables-legacy, then into iptables-nft, and runs the module in check mode, for real
and again; plus a case with kube-proxy's IPVS state (kube-ipvs0, ipsets, virtual servers) beside a keepalived-like
virtual server. The tests below judge what iptables-save, ipvsadm, ipset and ip showed in between.

    pytest -v tests/vm/test_leftovers.py        (make vm-leftovers)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import ansible_cli  # noqa: E402
import lab  # noqa: E402

DUMPS = {dump.name[:2]: dump for dump in sorted((ROOT / "tests" / "data" / "iptables-dumps").glob("*.rules"))}
PLAYBOOK = ROOT / "tests" / "vm" / "leftovers" / "site.yml"
# The mode each dump shows kube-proxy in (its file name: NN-<mode>-...); the module runs as if kube-proxy now ran in
# the other one, so that the dump's own chains are the leftovers.
RUN_AS = {"ipvs": "iptables", "iptables": "ipvs"}
# Cases: one dump in iptables-legacy and one in iptables-nft at the same time (dumps of the same mode), so one
# module execution works on both backends. Every dump is restored at least once, 01 and 03 in both backends; the
# last IPVS case adds kube-proxy's IPVS state (kube-ipvs0, ipsets, virtual servers) beside a keepalived-like
# virtual server and a foreign ipset. Module executions cost about a minute each on the emulated VM, so the pairs
# keep the run to 6 cases x 3 executions.
CASES = {
    "01L-02N": ("01", "02", False),
    "06L-01N-ipvs-state": ("06", "01", True),
    "03L-04N": ("03", "04", False),
    "05L-07N": ("05", "07", False),
    "08L-09N": ("08", "09", False),
    "10L-03N": ("10", "03", False),
}
# kube-proxy's IPVS objects as its proxier makes them (pkg/proxy/ipvs/proxier.go: dummy device, ipsets of
# ipset.go, one virtual server per cluster IP and node port), a keepalived-like virtual server (192.0.2.100:80) and
# a foreign ipset; the two rules matching kube-proxy's sets go into iptables-legacy beside dump 06.
IPVS_STATE = """
ip link add kube-ipvs0 type dummy && ip addr add 10.43.0.1/32 dev kube-ipvs0 && ip addr add 10.43.0.10/32 dev kube-ipvs0
ipset create -exist KUBE-CLUSTER-IP hash:ip,port && ipset add KUBE-CLUSTER-IP 10.43.0.1,tcp:443 && ipset add KUBE-CLUSTER-IP 10.43.0.10,udp:53
ipset create -exist KUBE-NODE-PORT-TCP bitmap:port range 0-65535 && ipset add KUBE-NODE-PORT-TCP 30080
ipset create -exist KUBE-LOOP-BACK hash:ip,port,ip && ipset create -exist keepalived-peers hash:ip
node=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
ipvsadm -A -t 10.43.0.1:443 -s rr && ipvsadm -A -u 10.43.0.10:53 -s rr && ipvsadm -A -t "$node":30080 -s rr && ipvsadm -A -t 192.0.2.100:80 -s rr
printf '%s\n' '*nat' '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT' \
  '-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE' COMMIT | iptables-legacy-restore --noflush
"""
# OTHER_MODE_CHAIN: the other mode's chain names (pkg/proxy/{iptables,ipvs}/proxier.go), written out independently
# of the module; keyed by the mode the module runs as.
OTHER_MODE_CHAIN = {
    "ipvs": re.compile(r"^:(KUBE-(SVC|SVL|SEP|EXT|FW|XLB)-[A-Z0-9]+|KUBE-NODEPORTS|KUBE-EXTERNAL-SERVICES|KUBE-PROXY-CANARY) "),
    "iptables": re.compile(r"^:(KUBE-NODE-PORT|KUBE-LOAD-BALANCER|KUBE-SOURCE-RANGES-FIREWALL|KUBE-IPVS-FILTER|KUBE-IPVS-OUT-FILTER) "),
}
# Lines of other owners (CNI plugins, Docker, kubelet), which must all stay.
FOREIGN = re.compile(r"(cali-|FLANNEL|flanneld|CNI-|WEAVE|DOCKER|docker0|KUBE-MARK-DROP|KUBE-KUBELET-CANARY)")


def restore(dump: Path, backend: str) -> str:
    """Shell text that creates the ipsets the dump's rules match and restores it into the backend."""
    sets = sorted(set(re.findall(r"--match-set (\S+) (\S+)", dump.read_text())))
    out = []
    for name, dims in sets:
        if name.startswith("KUBE-NODE-PORT-") and not name.endswith("HASH"):
            kind = "bitmap:port range 0-65535"  # kube-proxy's type (pkg/proxy/ipvs/ipset.go)
        else:
            kind = {1: "hash:net", 2: "hash:ip,port", 3: "hash:ip,port,ip"}[dims.count(",") + 1]
        out.append(f"ipset create -exist {name} {kind}")
    out.append(f"iptables-{backend}-restore <<'END_OF_DUMP'\n{dump.read_text()}END_OF_DUMP")
    return "\n".join(out)


def mode_of(dump: Path) -> str:
    return dump.name.split("-")[1]


def state(text: str) -> dict[str, str]:
    """The node's state listing (site.yml leftovers_state) by part."""
    parts = text.replace("\r\n", "\n").split("===\n")
    return dict(zip(("legacy", "nft", "ipvs", "ipsets", "links"), parts))


def tables(save: str) -> dict[str, list[str]]:
    """iptables-save text as {table: [lines]}, counters zeroed and comments dropped, so that two saves compare."""
    out, table = {}, None
    for line in save.splitlines():
        if line.startswith("*"):
            table = out.setdefault(line[1:], [])
        elif table is not None and line and not line.startswith("#") and line != "COMMIT":
            table.append(re.sub(r"\[\d+:\d+\]$", "[0:0]", line))
    return out


def lines(save: str) -> set[str]:
    return {f"{name} {line}" for name, body in tables(save).items() for line in body}


_FAILED: list[str] = []


@pytest.fixture(scope="module")
def results():
    # A failed set-up is reported once, not retried (with a VM boot) for each test of the module.
    if _FAILED:
        pytest.fail("the VM set-up failed before: " + _FAILED[0])
    try:
        yield from _results()
    except (AssertionError, subprocess.CalledProcessError, SystemExit) as exc:
        _FAILED.append(str(exc)[:2000])
        raise


def _results():
    """Boot one VM, install ipset and ipvsadm, run the playbook once; the per-case results.

    RKEOPS_LEFTOVERS_VM=<facts.json of a VM `lab.py up` started> reuses that VM (and leaves it running): for
    working on these tests without a boot each time.
    """
    reuse = os.environ.get("RKEOPS_LEFTOVERS_VM")
    with tempfile.TemporaryDirectory(prefix="rkeops-leftovers-") as tmp:
        work = Path(tmp)
        if reuse:
            vm = json.loads(Path(reuse).read_text())[0]
        else:
            vm = lab.boot(lab.build_image("bookworm"), work / "vms", "leftovers1", 1536)
        try:
            lab.wait_ssh(vm, 600)
            ssh = lab.ssh_base(Path(vm["identity_file"]), vm["port"])
            # ipset and ipvsadm are not in the lab image (the prereqs role installs them on real nodes). SSH to an
            # emulated VM on a loaded machine can miss lab.py's 5 s connect timeout: a few attempts.
            install = "command -v ipset && command -v ipvsadm || (apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y ipset ipvsadm)"
            for attempt in range(4):
                done = subprocess.run(ssh + [f"sudo sh -c '{install}' >/dev/null"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
                if done.returncode == 0:
                    break
                assert done.returncode == 255 and attempt < 3, f"installing ipset and ipvsadm failed: {done.stderr}"
            inventory = work / "inventory.ini"
            inventory.write_text(
                f"leftovers1 ansible_host=127.0.0.1 ansible_port={vm['port']} ansible_user={lab.LAB_USER} "
                f"ansible_ssh_private_key_file={vm['identity_file']} "
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' ansible_python_interpreter=/usr/bin/python3\n"
            )
            pairs = []
            for name, (legacy, nft, ipvs_state) in CASES.items():
                setup = restore(DUMPS[legacy], "legacy") + "\n" + restore(DUMPS[nft], "nft") + (IPVS_STATE if ipvs_state else "")
                pairs.append({"name": name, "mode": RUN_AS[mode_of(DUMPS[legacy])], "setup": setup})
            extra = {"leftovers_pairs": pairs, "leftovers_results": str(work / "results.json")}
            done = ansible_cli.run(PLAYBOOK, "-i", inventory, "-e", json.dumps(extra))
            assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
            yield {case["name"]: case for case in json.loads((work / "results.json").read_text())}
        finally:
            if not reuse:
                lab.stop(work / "vms", "leftovers1")


PARTS = [(case, backend) for case in CASES for backend in ("legacy", "nft")]


@pytest.mark.parametrize(("case_name", "backend"), PARTS, ids=[f"{case}-{backend}" for case, backend in PARTS])
def test_a_restored_dump_loses_its_leftovers_and_nothing_else(results, case_name, backend):
    case = results[case_name]
    legacy, nft, _ipvs_state = CASES[case_name]
    dump = DUMPS[legacy if backend == "legacy" else nft]
    mode = RUN_AS[mode_of(dump)]
    before, after = lines(state(case["before"])[backend]), lines(state(case["after_run"])[backend])
    # The dump really went into that backend, and the module worked on both backends in its one execution.
    assert len(before) >= len([line for line in dump.read_text().splitlines() if line[:1] in ":-"])
    assert case["run"]["backend"] == "legacy,nft"
    # The leftovers are gone: none of the other mode's chains is left.
    assert not [line for line in after if OTHER_MODE_CHAIN[mode].match(line.split(" ", 1)[1])]
    # Every other line of iptables-save is as it was: nothing appeared, and what went is the leftovers (chains of the
    # other mode, their rules, and the rules jumping to them), never another owner's.
    assert after <= before
    gone = before - after
    assert gone
    for line in gone:
        text = line.split(" ", 1)[1]
        assert text.startswith((":KUBE-", "-A ")), line
        assert not FOREIGN.search(text) or " -j KUBE-" in text, line
    assert not [line for line in gone if line.startswith("filter") and "KUBE-FIREWALL" in line]
    declared_gone = {line.split()[1][1:] for line in gone if line.split()[1].startswith(":")}
    for line in gone:
        words = line.split()
        if words[1] == "-A":
            assert words[2] in declared_gone or words[-1] in declared_gone or "--match-set KUBE-" in line or "/" in line, line
    assert case["run"]["changed"] is True
    assert case["run"]["removed"]["count"] == case["check"]["found"]["count"] > 0
    assert sorted(case["run"]["found"]["backends"]) == ["legacy", "nft"]


@pytest.mark.parametrize("case_name", list(CASES))
def test_check_mode_changes_nothing_and_a_second_run_changes_nothing(results, case_name):
    case = results[case_name]
    assert case["check"]["changed"] is True
    assert case["check"]["removed"]["count"] == 0
    before, after_check = state(case["before"]), state(case["after_check"])
    for backend in ("legacy", "nft"):
        assert tables(after_check[backend]) == tables(before[backend])
    assert (after_check["ipvs"], after_check["ipsets"]) == (before["ipvs"], before["ipsets"])
    assert ("kube-ipvs0" in after_check["links"]) == ("kube-ipvs0" in before["links"])
    # --diff lists the lines that would go.
    assert ":KUBE-" in case["check"]["diff"]["before"] and case["check"]["diff"]["after"] == ""
    assert case["second"]["changed"] is False
    assert case["second"]["found"]["count"] == 0


def test_ipvs_state_goes_and_keepalived_stays(results):
    case = results["06L-01N-ipvs-state"]
    before, after = state(case["before"]), state(case["after_run"])
    found = case["check"]["found"]
    assert "TCP 10.43.0.1:443" in found["ipvs_services"] and "UDP 10.43.0.10:53" in found["ipvs_services"]
    assert len([service for service in found["ipvs_services"] if service.endswith(":30080")]) == 1
    assert len(found["ipvs_services"]) == 3
    assert sorted(found["ipsets"]) == ["KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT-TCP"]
    assert found["interfaces"] == ["kube-ipvs0"]
    # kube-proxy's virtual servers, ipsets and device went; keepalived's virtual server and the foreign set stayed.
    assert "10.43.0.1:443" in before["ipvs"] and "192.0.2.100:80" in before["ipvs"]
    assert after["ipvs"].split() == ["-A", "-t", "192.0.2.100:80", "-s", "rr"]
    assert after["ipsets"].split() == ["keepalived-peers"]
    assert "kube-ipvs0" in before["links"] and "kube-ipvs0" not in after["links"]
    assert "--match-set KUBE-CLUSTER-IP" in before["legacy"] and "--match-set KUBE-" not in after["legacy"]
    assert case["run"]["changed"] is True and case["second"]["changed"] is False and case["second"]["found"]["count"] == 0


def test_every_dump_is_restored():
    assert {dump for legacy, nft, _state in CASES.values() for dump in (legacy, nft)} == set(DUMPS)
    assert len(DUMPS) >= 5
