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
import lab  # noqa: E402

DUMPS = sorted((ROOT / "tests" / "data" / "iptables-dumps").glob("*.rules"))
PLAYBOOK = ROOT / "tests" / "vm" / "leftovers" / "site.yml"
BACKENDS = ("legacy", "nft")
# The mode each dump shows kube-proxy in; the module runs as if kube-proxy now ran in the other one, so that the
# dump's own chains are the leftovers (the file name says which: NN-<mode>-...).
RUN_AS = {"ipvs": "iptables", "iptables": "ipvs"}
# The other mode's chain names (pkg/proxy/{iptables,ipvs}/proxier.go), written out independently of the module.
OTHER_MODE_CHAIN = {
    "ipvs": re.compile(r"^:(KUBE-(SVC|SVL|SEP|EXT|FW|XLB)-[A-Z0-9]+|KUBE-NODEPORTS|KUBE-EXTERNAL-SERVICES|KUBE-PROXY-CANARY) "),
    "iptables": re.compile(r"^:(KUBE-NODE-PORT|KUBE-LOAD-BALANCER|KUBE-SOURCE-RANGES-FIREWALL|KUBE-IPVS-FILTER|KUBE-IPVS-OUT-FILTER) "),
}
# Lines of other owners (CNI plugins, Docker, kubelet), which must all stay.
FOREIGN = re.compile(r"(cali-|FLANNEL|flanneld|CNI-|WEAVE|DOCKER|docker0|KUBE-MARK-DROP|KUBE-KUBELET-CANARY)")


def mode_of(dump: Path) -> str:
    return dump.name.split("-")[1]


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


@pytest.fixture(scope="module")
def results():
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
            # ipset and ipvsadm are not in the lab image (the prereqs role installs them on real nodes).
            subprocess.run(
                ssh + ["sudo sh -c 'apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y ipset ipvsadm' >/dev/null"],
                check=True,
                stdin=subprocess.DEVNULL,
            )
            inventory = work / "inventory.ini"
            inventory.write_text(
                f"leftovers1 ansible_host=127.0.0.1 ansible_port={vm['port']} ansible_user={lab.LAB_USER} "
                f"ansible_ssh_private_key_file={vm['identity_file']} "
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' ansible_python_interpreter=/usr/bin/python3\n"
            )
            extra = {
                "leftovers_dumps": [{"name": dump.name, "path": str(dump), "mode": RUN_AS[mode_of(dump)]} for dump in DUMPS],
                "leftovers_ipvs_dump": str(next(dump for dump in DUMPS if mode_of(dump) == "ipvs")),
                "leftovers_results": str(work / "results.json"),
            }
            env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="True", ANSIBLE_NOCOLOR="1")
            env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "build" / "collections"))
            done = subprocess.run(
                ["ansible-playbook", str(PLAYBOOK), "-i", str(inventory), "-e", json.dumps(extra)], capture_output=True, text=True, env=env, check=False
            )
            assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
            yield {(case["name"], case["backend"]): case for case in json.loads((work / "results.json").read_text())}
        finally:
            if not reuse:
                lab.stop(work / "vms", "leftovers1")


CASES = [(dump, backend) for dump in DUMPS for backend in BACKENDS]


@pytest.mark.parametrize(("dump", "backend"), CASES, ids=[f"{dump.name[:2]}-{backend}" for dump, backend in CASES])
def test_a_restored_dump_loses_its_leftovers_and_nothing_else(results, dump, backend):
    case = results[(dump.name, backend)]
    before, after = lines(case["before"]), lines(case["after_run"])
    # The dump really went into that backend, and the module worked on it.
    assert len(before) >= len([line for line in dump.read_text().splitlines() if line[:1] in ":-"])
    assert case["run"]["backend"] == backend
    # The leftovers are gone: none of the other mode's chains is left.
    assert not [line for line in after if OTHER_MODE_CHAIN[case["mode"]].match(line.split(" ", 1)[1])]
    # Every other line of iptables-save is as it was: nothing appeared, and what went is the leftovers (chains of the
    # other mode, their rules, and the rules jumping to them), never another owner's.
    assert after <= before
    gone = before - after
    assert case["run"]["changed"] is True and case["run"]["removed"]["count"] == case["check"]["found"]["count"] > 0
    for line in gone:
        text = line.split(" ", 1)[1]
        assert text.startswith((":KUBE-", "-A ")), line
        assert not FOREIGN.search(text) or " -j KUBE-" in text, line
    assert not [line for line in gone if line.startswith("filter") and "KUBE-FIREWALL" in line]
    declared_gone = {line.split()[1][1:] for line in gone if line.split()[1].startswith(":")}
    for line in gone:
        words = line.split()
        if words[1] == "-A":
            assert words[2] in declared_gone or words[-1] in declared_gone or "/" in line, line


@pytest.mark.parametrize(("dump", "backend"), CASES, ids=[f"{dump.name[:2]}-{backend}" for dump, backend in CASES])
def test_check_mode_changes_nothing_and_a_second_run_changes_nothing(results, dump, backend):
    case = results[(dump.name, backend)]
    assert case["check"]["changed"] is True
    assert case["check"]["removed"]["count"] == 0
    assert tables(case["after_check"]) == tables(case["before"])
    # --diff lists the lines that would go.
    assert ":KUBE-" in case["check"]["diff"]["before"] and case["check"]["diff"]["after"] == ""
    assert case["second"]["changed"] is False
    assert case["second"]["found"]["count"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ipvs_state_goes_and_keepalived_stays(results, backend):
    case = results[("ipvs-state", backend)]
    before_save, before_ipvs, before_sets, before_links = case["before"].split("===\n")
    after_save, after_ipvs, after_sets, after_links = case["after_run"].split("===\n")
    found = case["check"]["found"]
    assert sorted(found["ipvs_services"])[:2] == ["TCP 10.43.0.1:443"] + [s for s in sorted(found["ipvs_services"]) if ":30080" in s]
    assert "UDP 10.43.0.10:53" in found["ipvs_services"] and len(found["ipvs_services"]) == 3
    assert sorted(found["ipsets"]) == ["KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT-TCP"]
    assert found["interfaces"] == ["kube-ipvs0"]
    # kube-proxy's virtual servers, ipsets and device went; keepalived's virtual server and the foreign set stayed.
    assert "10.43.0.1:443" in before_ipvs and "192.0.2.100:80" in before_ipvs
    assert after_ipvs.split() == ["-A", "-t", "192.0.2.100:80", "-s", "rr"]
    assert after_sets.split() == ["keepalived-peers"]
    assert "kube-ipvs0" in before_links and "kube-ipvs0" not in after_links
    assert "KUBE-CLUSTER-IP" in before_save and "--match-set KUBE-" not in after_save
    assert case["run"]["changed"] is True and case["second"]["changed"] is False and case["second"]["found"]["count"] == 0
