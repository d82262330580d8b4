"""kube_proxy_info run through AnsibleModule against a fake `docker` that serves a container's state and log.

The fake keeps docker's semantics that the module relies on: `inspect` gives State.StartedAt/FinishedAt, `logs`
honours --since (inclusive), --tail and --timestamps, writes the container's stdout and stderr lines to its own
stdout and stderr, and stops when the reader goes away. So the module's real commands run: `docker logs --since ...
| head`, then `docker logs --tail`, in one module execution.

Real lines: kube-proxy's wordings from docs/research/rke-kube-proxy.md (B2, B6) and tests/data/samples/12
(traefik/traefik#9263), read verbatim.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rkeops.ipvs.plugins.modules import kube_proxy_info

SAMPLES = Path(__file__).resolve().parents[4] / "tests" / "data" / "samples"
SECOND = 1_000_000_000
T0 = 1_714_564_800 * SECOND  # 2024-05-01T12:00:00Z

FAKE_DOCKER = '''#!__PYTHON__
"""Fake docker: inspect and logs of one container, from the JSON file $FAKE_DOCKER_STATE."""
import datetime, json, os, re, sys

state = json.load(open(os.environ["FAKE_DOCKER_STATE"]))
with open(os.environ["FAKE_DOCKER_STATE"] + ".calls", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")


def stamp(ns):
    moment = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % 10**9)


def parse_since(text):
    if re.match(r"^\\d+(\\.\\d+)?$", text):
        seconds, _dot, fraction = text.partition(".")
        return int(seconds) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])
    raise SystemExit("fake docker: --since %s not understood" % text)


args = sys.argv[1:]
if args[0] == "inspect":
    if state.get("inspect") is None:
        sys.stderr.write("Error: No such container: %s\\n" % args[-1])
        sys.exit(1)
    print(json.dumps([state["inspect"]]))
    sys.exit(0)
if args[0] == "logs":
    if state.get("logs_error"):
        sys.stderr.write(state["logs_error"] + "\\n")
        sys.exit(1)
    since, tail, stamps, index = None, None, False, 1
    while index < len(args) - 1:
        if args[index] == "--since":
            since, index = parse_since(args[index + 1]), index + 2
        elif args[index] == "--tail":
            tail, index = int(args[index + 1]), index + 2
        elif args[index] == "--timestamps":
            stamps, index = True, index + 1
        else:
            raise SystemExit("fake docker: %s not understood" % args[index])
    entries = [entry for entry in state["log"] if since is None or entry[0] >= since]
    if tail is not None:
        entries = entries[-tail:] if tail else []
    try:
        for ns, stream, text in entries:
            out = sys.stdout if stream == "stdout" else sys.stderr
            out.write((stamp(ns) + " " if stamps else "") + text + "\\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os._exit(0)
    sys.exit(0)
raise SystemExit("fake docker: %s not understood" % args)
'''


def klog(ns, level, where, message):
    """A kube-proxy line as klog prints it, at the given time."""
    moment = datetime.datetime.fromtimestamp(ns // SECOND, datetime.timezone.utc)
    return [ns, "stderr", "%s%s %s.%06d       1 %s] %s" % (level, moment.strftime("%m%d"), moment.strftime("%H:%M:%S"), (ns % SECOND) // 1000, where, message)]


def start_lines(ns, proxier_line, flags=100):
    """The first lines of a kube-proxy start at --v=2: version, every flag, then the proxier choice."""
    lines = [klog(ns, "I", "server.go:846", '"Version info" version="v1.24.17"')]
    lines += [klog(ns + i * 1000, "I", "flags.go:64", 'FLAG: --flag-%d="x"' % i) for i in range(flags)]
    lines.append(klog(ns + SECOND // 10, *proxier_line))
    return lines


IPVS_LINE = ("I", "server_others.go:274", '"Using ipvs Proxier"')
IPTABLES_LINE = ("I", "server_others.go:212", '"Using iptables Proxier"')
FALLBACK_1_24 = [
    (
        "E",
        "server_others.go:259",
        '"Can\'t use the IPVS proxier" err="IPVS proxier will not be used because the following required kernel modules are not loaded: [ip_vs ip_vs_rr]"',
    ),
    IPTABLES_LINE,
]
REFUSED_1_28 = [
    ("E", "server.go:556", '"Error running ProxyServer" err="can\'t use the IPVS proxier: Ipvs not supported"'),
    ("E", "run.go:74", '"command failed" err="can\'t use the IPVS proxier: Ipvs not supported"'),
]


def iso(ns):
    moment = datetime.datetime.fromtimestamp(ns // SECOND, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % SECOND)


def inspect(started, finished=None, status="running", restarts=0):
    return {
        "RestartCount": restarts,
        "State": {
            "Status": status,
            "Running": status in ("running", "restarting"),
            "Restarting": status == "restarting",
            "StartedAt": iso(started),
            "FinishedAt": iso(finished) if finished else "0001-01-01T00:00:00Z",
        },
    }


class Node:
    def __init__(self, tmp_path):
        self.state_file = tmp_path / "docker-state.json"
        self.docker = tmp_path / "docker"
        self.docker.write_text(FAKE_DOCKER.replace("__PYTHON__", sys.executable))
        self.docker.chmod(0o755)
        self.inspect = inspect(T0)
        self.log = []
        self.logs_error = ""
        self.proxy_mode = "ipvs"  # what /proxyMode answers; None: connection refused
        self.asked = []
        self.kube_ipvs0 = True
        self.ipvsadm = "TCP  10.43.0.1:443 rr\n  -> 10.0.2.15:6443               Masq    1      0          0\n"
        # The data path: whether the kubernetes service accepts a connection, and the addresses asked (no real socket:
        # the unit tests connect nowhere).
        self.service_answers = True
        self.connected = []
        # What the leftovers are read from: iptables-nft-save (the lab's and Debian's default backend), ipset save,
        # ipvsadm -S -n and kube-ipvs0's addresses. By default a clean IPVS-mode node.
        self.iptables_save = ""
        self.iptables_save_rc = 0
        self.ipset_save = ""
        self.ipvsadm_save = "-A -t 10.43.0.1:443 -s rr\n-a -t 10.43.0.1:443 -r 10.0.2.15:6443 -m -w 1\n"
        self.commands = []

    def save(self):
        self.state_file.write_text(json.dumps({"inspect": self.inspect, "log": self.log, "logs_error": self.logs_error}))

    def calls(self):
        path = Path(str(self.state_file) + ".calls")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def node(tmp_path, monkeypatch):
    node = Node(tmp_path)
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(node.state_file))
    run_command = AnsibleModule.run_command

    def fake_run_command(module, args, **kwargs):
        if isinstance(args, list):
            node.commands.append(args)
        if isinstance(args, list) and args[0] == "/usr/sbin/ipvsadm":
            if args[1:] == ["-S", "-n"]:
                return 0, node.ipvsadm_save, ""
            return 0, "IP Virtual Server version 1.2.1 (size=4096)\n" + node.ipvsadm, ""
        if isinstance(args, list) and args[0] == "/usr/sbin/iptables-nft-save":
            return node.iptables_save_rc, node.iptables_save, "iptables-nft-save: permission denied (you must be root)" if node.iptables_save_rc else ""
        if isinstance(args, list) and args[0] == "/usr/sbin/ipset":
            return 0, node.ipset_save, ""
        if isinstance(args, list) and args[0] == "/usr/sbin/ip":
            return 0, "5: kube-ipvs0    inet 10.43.0.1/32 scope global kube-ipvs0\\       valid_lft forever preferred_lft forever\n", ""
        return run_command(module, args, **kwargs)

    class Connection:
        def close(self):
            pass

    def create_connection(address, timeout=None):
        node.connected.append((address, timeout))
        if node.service_answers is True:
            return Connection()
        if node.service_answers == "timeout":
            raise socket.timeout("timed out")
        raise ConnectionRefusedError(111, "Connection refused")

    def open_url(url, **kwargs):
        node.asked.append(url)
        if node.proxy_mode is None:
            raise OSError("<urlopen error [Errno 111] Connection refused>")

        class Answer:
            def read(self):
                return node.proxy_mode.encode()

        return Answer()

    monkeypatch.setattr(AnsibleModule, "run_command", fake_run_command)
    binaries = {"docker": str(node.docker), "ipvsadm": "/usr/sbin/ipvsadm", "ipset": "/usr/sbin/ipset", "ip": "/usr/sbin/ip"}
    binaries.update({name: "/usr/sbin/" + name for name in ("iptables-nft-save", "iptables-nft-restore")})
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda module, name, required=False, opt_dirs=None: binaries.get(name))
    monkeypatch.setattr(kube_proxy_info.socket, "create_connection", create_connection)
    monkeypatch.setattr(kube_proxy_info, "open_url", open_url)
    exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: node.kube_ipvs0 if path == "/sys/class/net/kube-ipvs0" else exists(path))
    return node


def run(node, capsys, **params):
    node.save()
    with patch_module_args(dict(params)), pytest.raises(SystemExit):
        kube_proxy_info.main()
    return json.loads(capsys.readouterr().out)


def test_proxier_line_found_after_more_than_5000_sync_lines(node, capsys):
    # iptables mode at --v=2 logs "SyncProxyRules complete" on every sync (B6): the proxier line leaves any tail.
    node.log = start_lines(T0, IPTABLES_LINE)
    node.log += [klog(T0 + SECOND + i * 30 * SECOND, "I", "proxier.go:805", '"SyncProxyRules complete" elapsed="12.3ms"') for i in range(6000)]
    node.proxy_mode = "iptables"
    node.kube_ipvs0, node.ipvsadm_save = False, ""  # an iptables node: no IPVS state left
    result = run(node, capsys, expected_mode="iptables", start_log_lines=500, log_lines=2000)
    assert result["ok"] is True, result["problems"]
    assert result["log"]["mode"] == "iptables"
    assert result["log"]["mode_line"].endswith('server_others.go:212] "Using iptables Proxier"')
    assert result["log"]["start_lines"] == 500  # head stopped docker logs after the first 500 lines
    assert result["log"]["since"] == ""  # one start: read from the beginning
    assert result["log"]["recent_errors"] == []
    # The tail the module used to read (2000 lines) holds no proxier line at all.
    tail_call = [call for call in node.calls() if "--tail" in call]
    assert tail_call == [["logs", "--timestamps", "--tail", "2000", "kube-proxy"]]
    assert all("Proxier" not in entry[2] for entry in node.log[-2000:])


def test_ipvs_judged_ok_with_the_proxier_line_long_gone_from_the_tail(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.log += [klog(T0 + SECOND + i * SECOND, "I", "shared_informer.go:311", '"Caches are synced" controller="endpoint slice config"') for i in range(5500)]
    result = run(node, capsys)
    assert result["ok"] is True, result["problems"]
    assert result["log"]["mode"] == "ipvs"
    assert result["proxy_mode"] == "ipvs"
    assert result["virtual_servers"] == ["TCP 10.43.0.1:443 rr"]


def test_rotated_log_without_the_first_lines_trusts_proxy_mode(node, capsys):
    # The first lines of this start were rotated away: what docker still has begins hours later.
    node.log = [klog(T0 + 3 * 3600 * SECOND + i * SECOND, "I", "proxier.go:1000", '"Syncing ipvs proxier rules"') for i in range(50)]
    result = run(node, capsys)
    assert result["ok"] is True, result["problems"]
    assert result["log"]["mode"] == "none"
    node.proxy_mode = None
    result = run(node, capsys)
    assert result["ok"] is False
    assert result["problems"][:2] == [
        "kube-proxy's log since its start does not say which proxier it uses (not yet, or rotated away)",
        "http://127.0.0.1:10249/proxyMode gives no answer (<urlopen error [Errno 111] Connection refused>)",
    ]


def test_restarted_container_is_judged_on_its_current_start_only(node, capsys):
    # First run: fell back to iptables for lack of modules; stopped; started again 5 s later with the modules loaded.
    first = start_lines(T0, FALLBACK_1_24[0])
    first.append(klog(T0 + SECOND // 5, *FALLBACK_1_24[1]))
    stopped = T0 + 600 * SECOND
    started = stopped + 5 * SECOND
    node.log = first + start_lines(started - SECOND // 100, IPVS_LINE)  # its first line stamped before StartedAt
    node.inspect = inspect(started, finished=stopped, restarts=1)
    result = run(node, capsys)
    assert result["ok"] is True, result["problems"]
    assert result["log"]["since"] == "%d.%09d" % divmod(started - SECOND, SECOND)
    assert result["log"]["fallback_lines"] == []
    assert result["log"]["missing_modules"] == []
    assert result["log"]["start_lines"] == 102  # the current start's lines, its early first line included
    assert result["log"]["recent_errors"] == []  # the first run's error is not this one's
    since = result["log"]["since"]
    assert [call for call in node.calls() if call[0] == "logs"] == [
        ["logs", "--timestamps", "--since", since, "kube-proxy"],
        ["logs", "--timestamps", "--since", since, "--tail", "2000", "kube-proxy"],
    ]


def test_fallback_names_the_node_s_missing_modules(node, capsys):
    # What e2e's verify test reads: 1.21-1.25 fall back to iptables and say which modules are missing.
    node.log = start_lines(T0, FALLBACK_1_24[0]) + [klog(T0 + SECOND // 5, *FALLBACK_1_24[1])]
    node.proxy_mode = "iptables"
    node.kube_ipvs0 = False
    node.ipvsadm = ""
    result = run(node, capsys)
    assert result["ok"] is False
    assert result["problems"] == [
        "kube-proxy fell back to iptables",
        "kernel modules not loaded: ip_vs, ip_vs_rr",
        "http://127.0.0.1:10249/proxyMode answers iptables",
        "no kube-ipvs0 interface",
        "ipvsadm -Ln does not list the kubernetes service 10.43.0.1:443",
    ]


def test_crash_loop_of_kube_proxy_1_28_names_the_refusal_and_its_reason(node, capsys):
    runs = [T0 + i * 20 * SECOND for i in range(5)]
    node.log = [line for start in runs for line in start_lines(start, REFUSED_1_28[0], flags=3) + [klog(start + SECOND // 5, *REFUSED_1_28[1])]]
    node.inspect = inspect(runs[-1], finished=runs[-1] + SECOND // 2, status="restarting", restarts=4)
    node.proxy_mode = None
    node.kube_ipvs0 = False
    node.ipvsadm = ""
    result = run(node, capsys)
    assert result["ok"] is False
    assert result["container"]["running"] is False
    assert result["problems"][:4] == [
        "the kube-proxy container is not running (status restarting, 4 restarts)",
        "kube-proxy refused IPVS mode and exits (Kubernetes 1.26 and later do not fall back to iptables)",
        "Ipvs not supported",
        "http://127.0.0.1:10249/proxyMode gives no answer (<urlopen error [Errno 111] Connection refused>)",
    ]
    assert result["log"]["start_lines"] == 6  # the last run only
    assert len(result["log"]["recent_errors"]) == 2  # each error once, however many runs repeated it


def test_sample_12_log_verbatim(node, capsys):
    # traefik/traefik#9263, as posted (with the poster's k9s frame characters).
    lines = [line for line in (SAMPLES / "12-kube-proxy-log-using-ipvs-proxier_traefik-9263.txt").read_text().splitlines() if not line.startswith("# ")]
    node.log = [[T0 + i * 1000, "stderr", line] for i, line in enumerate(lines)]
    result = run(node, capsys)
    assert result["ok"] is True, result["problems"]
    assert "server_others.go:274] Using ipvs Proxier." in result["log"]["mode_line"]


@pytest.mark.parametrize(
    ("address", "asked"),
    [("0.0.0.0:10249", ["http://127.0.0.1:10249/proxyMode"]), ("[::]:10250", ["http://[::1]:10250/proxyMode"]), ("", [])],
)
def test_metrics_address(node, capsys, address, asked):
    node.log = start_lines(T0, IPVS_LINE)
    result = run(node, capsys, metrics_address=address)
    assert node.asked == asked
    assert result["ok"] is True, result["problems"]
    if not asked:
        assert result["proxy_mode"] is None
        assert result["proxy_mode_url"] is None
        assert result["proxy_mode_error"] == "kube-proxy's metrics server is turned off (metrics_address is empty)"


def test_bad_metrics_address_fails_clearly(node, capsys):
    result = run(node, capsys, metrics_address="127.0.0.1:http")
    assert result["failed"] is True
    assert result["msg"].startswith("metrics_address: '127.0.0.1:http' is not host:port; give kube-proxy's metrics-bind-address as host:port")


def test_a_log_docker_cannot_read_back_is_named(node, capsys):
    node.logs_error = "Error response from daemon: configured logging driver does not support reading"
    result = run(node, capsys)
    assert result["log"]["error"] == node.logs_error
    assert result["ok"] is True  # /proxyMode answers ipvs, kube-ipvs0 and the service are there


def test_no_container(node, capsys):
    node.inspect = None
    result = run(node, capsys)
    assert result["problems"] == ["no kube-proxy container (has rke up run on this node?)"]
    assert [call[0] for call in node.calls()] == ["inspect"]  # no log read


# --- The data path and the other mode's leftovers ------------------------------------------------------------------

DUMPS = Path(__file__).resolve().parents[3] / "data" / "iptables-dumps"


def test_data_path_answered_from_the_node(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.ipvsadm = node.ipvsadm.replace("10.43.0.1", "10.96.0.1")
    result = run(node, capsys, service_cluster_ip_range="10.96.0.0/12", data_path_timeout=2)
    assert result["ok"] is True, result["problems"]
    assert result["data_path"] == {"checked": True, "address": "10.96.0.1:443", "answered": True, "error": ""}
    assert node.connected == [(("10.96.0.1", 443), 2)]


@pytest.mark.parametrize(("answer", "reason"), [(False, "[Errno 111] Connection refused"), ("timeout", "timed out")])
def test_data_path_without_answer_names_the_address(node, capsys, answer, reason):
    # A stale REJECT answers with a refusal; a virtual server without a real server, or nothing at all, times out.
    node.log = start_lines(T0, IPVS_LINE)
    node.service_answers = answer
    result = run(node, capsys)
    assert result["ok"] is False
    assert result["running_ok"] is False  # worth waiting for: kube-proxy may not have synced yet
    assert result["problems"] == ["the kubernetes service 10.43.0.1:443 did not answer from this node (%s)" % reason]
    assert result["data_path"]["answered"] is False


def test_data_path_check_turned_off_connects_nowhere(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.service_answers = False
    result = run(node, capsys, data_path=False)
    assert result["ok"] is True, result["problems"]
    assert result["data_path"] == {"checked": False, "address": "10.43.0.1:443", "answered": None, "error": ""}
    assert node.connected == []


def test_iptables_mode_leftovers_on_an_ipvs_node_are_a_problem_with_their_count(node, capsys):
    # A public dump of an iptables-mode node (kubernetes#36835, in the leftovers module's corpus) on a node whose
    # kube-proxy now answers ipvs: its KUBE-SVC-*/KUBE-SEP-* chains are leftovers.
    node.log = start_lines(T0, IPVS_LINE)
    node.iptables_save = (DUMPS / "09-iptables-nat-docker_kubernetes-36835.rules").read_text()
    result = run(node, capsys)
    leftovers = result["leftovers"]
    assert leftovers["checked"] is True and leftovers["mode"] == "iptables" and leftovers["error"] == ""
    nat = leftovers["found"]["iptables"]["nat"]
    assert {"KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-SEP-7WFUHPTNYMSU2JFN"} <= set(nat["chains"])
    assert not [chain for chain in nat["chains"] if not chain.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-NODEPORTS"))], nat["chains"]
    assert leftovers["count"] >= 6
    assert result["ok"] is False
    assert result["running_ok"] is True  # leftovers do not go away by waiting
    (problem,) = result["problems"]
    assert problem.startswith("%d leftovers of iptables mode (nat: %d chains" % (leftovers["count"], len(nat["chains"])))
    assert problem.endswith("the module rkeops.ipvs.kube_proxy_leftovers removes them")
    # Read only: no iptables-restore, no ipset or ipvsadm change.
    assert not [args for args in node.commands if "restore" in args[0] or args[1:2] in (["destroy"], ["-D"], ["-C"])]


def test_leftovers_reported_but_not_a_problem(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.iptables_save = (DUMPS / "09-iptables-nat-docker_kubernetes-36835.rules").read_text()
    result = run(node, capsys, leftovers="report")
    assert result["ok"] is True, result["problems"]
    assert result["leftovers"]["count"] >= 6


def test_leftovers_skipped_reads_no_rules(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.iptables_save = (DUMPS / "09-iptables-nat-docker_kubernetes-36835.rules").read_text()
    result = run(node, capsys, leftovers="skip")
    assert result["ok"] is True, result["problems"]
    assert result["leftovers"] == {"checked": False, "mode": "iptables", "count": 0, "found": {}, "error": ""}
    assert not [args for args in node.commands if "iptables" in args[0] or "ipset" in args[0]]


def test_ipvs_mode_leftovers_on_an_iptables_node(node, capsys):
    # Back in iptables mode: the ipsets, virtual server and kube-ipvs0 IPVS mode left.
    node.log = start_lines(T0, IPTABLES_LINE)
    node.proxy_mode = "iptables"
    node.ipset_save = "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\nadd KUBE-CLUSTER-IP 10.43.0.1,tcp:443\n"
    result = run(node, capsys, expected_mode="iptables")
    leftovers = result["leftovers"]
    assert leftovers["mode"] == "ipvs"
    assert leftovers["found"]["ipsets"] == ["KUBE-CLUSTER-IP"]
    assert leftovers["found"]["ipvs_services"] == ["TCP 10.43.0.1:443"]
    assert leftovers["found"]["interfaces"] == ["kube-ipvs0"]
    assert leftovers["count"] == 3
    assert result["problems"] == [
        "3 leftovers of ipvs mode (1 ipset (KUBE-CLUSTER-IP); 1 IPVS virtual server (TCP 10.43.0.1:443); 1 interface (kube-ipvs0)); "
        "the module rkeops.ipvs.kube_proxy_leftovers removes them"
    ]


def test_unknown_mode_reads_no_leftovers(node, capsys):
    # Whose leftovers they are depends on the mode kube-proxy runs in: unknown, nothing is judged.
    node.proxy_mode = None
    result = run(node, capsys)
    assert result["leftovers"]["checked"] is False
    assert not any("leftovers" in problem for problem in result["problems"])


def test_leftovers_that_cannot_be_read_are_named(node, capsys):
    node.log = start_lines(T0, IPVS_LINE)
    node.iptables_save_rc = 1
    result = run(node, capsys)
    assert result["ok"] is False
    assert result["leftovers"]["checked"] is False
    assert result["problems"] == [
        "the leftovers of the other proxy mode could not be read: iptables-nft-save failed (rc 1): iptables-nft-save: permission denied (you must be root)"
    ]


# --- What to do about it: the running mode and whether a restart helps ---------------------------------------------
# The oracle is the rule a play restarting kube-proxy applies (kube-proxy picks its proxier only when it starts, so
# only a restart changes it): restart a container that exists and is not in the expected mode by every account, when
# it runs in a known other mode, refused the mode, or is stopped; never a missing container (rke's to deploy), never
# for a mode not yet known; a reading decides once the container is missing or its mode is known.


def in_mode(node):
    pass  # the node's default: kube-proxy says ipvs and runs


def stopped(node):
    node.inspect = inspect(T0, finished=T0 + 60 * SECOND, status="exited")
    node.proxy_mode = None


def other_mode(node):
    node.log = start_lines(T0, IPTABLES_LINE)
    node.proxy_mode = "iptables"


def metrics_off_log_says_iptables(node):
    node.log = start_lines(T0, IPTABLES_LINE)
    node.proxy_mode = None


def refused_crash_loop(node):
    node.log = start_lines(T0, REFUSED_1_28[0], flags=3) + [klog(T0 + SECOND // 5, *REFUSED_1_28[1])]
    node.inspect = inspect(T0, finished=T0 + SECOND // 2, status="restarting", restarts=4)
    node.proxy_mode = None


def not_said_yet(node):
    node.log = [klog(T0, "I", "server.go:846", '"Version info" version="v1.24.17"')]
    node.proxy_mode = None


def no_container(node):
    node.inspect = None
    node.proxy_mode = None


def in_mode_with_leftovers(node):
    node.log = start_lines(T0, IPVS_LINE)
    node.iptables_save = (DUMPS / "09-iptables-nat-docker_kubernetes-36835.rules").read_text()


def other_proxy_mode_answer(node):
    # /proxyMode is the authority even on a mode this collection does not switch to (kube-proxy up to 1.25 had it).
    node.log = start_lines(T0, IPVS_LINE)
    node.proxy_mode = "userspace"


# rke's kube-proxy command (rancher/rke cluster/plan.go BuildKubeProxyProcess: rke-tools' entrypoint, then
# `kube-proxy` and each argument as --key=value, services.kubeproxy.extra_args included).
RKE_COMMAND = ["/opt/rke-tools/entrypoint.sh", "kube-proxy", "--cluster-cidr=10.42.0.0/16", "--v=2", "--healthz-bind-address=127.0.0.1"]


def command(node, *extra):
    node.inspect["Config"] = {"Entrypoint": None, "Cmd": RKE_COMMAND + list(extra)}


def started_as_it_was(node):
    # rke up started a stopped container with its old command (DoRunContainer): no --proxy-mode, so iptables.
    command(node)
    other_mode(node)


def fell_back_with_ipvs_in_its_command(node):
    command(node, "--proxy-mode=ipvs")
    other_mode(node)


def stopped_with_the_old_command(node):
    stopped(node)
    command(node, "--proxy-mode", "iptables")


def mode_from_a_config_file(node):
    command(node, "--config=/etc/kube-proxy/config.yaml")
    other_mode(node)


def ipvs_command_towards_iptables(node):
    command(node, "--proxy-mode=ipvs", "--ipvs-scheduler=rr")


@pytest.mark.parametrize(
    ("scenario", "expected_mode", "command_mode", "restart", "recreate"),
    [
        (started_as_it_was, "ipvs", "iptables", False, True),
        (fell_back_with_ipvs_in_its_command, "ipvs", "ipvs", True, False),
        (stopped_with_the_old_command, "ipvs", "iptables", False, True),
        (mode_from_a_config_file, "ipvs", "", True, False),
        (ipvs_command_towards_iptables, "iptables", "ipvs", False, True),
        (ipvs_command_towards_iptables, "ipvs", "ipvs", False, False),
        (no_container, "ipvs", "", False, False),
    ],
)
def test_a_command_that_asks_for_another_mode_needs_the_container_recreated_not_restarted(
    node, capsys, scenario, expected_mode, command_mode, restart, recreate
):
    node.log = start_lines(T0, IPVS_LINE)
    scenario(node)
    result = run(node, capsys, expected_mode=expected_mode)
    assert result["container"]["command_mode"] == command_mode
    assert (result["needs_restart"], result["needs_recreate"]) == (restart, recreate), result["problems"]


@pytest.mark.parametrize(
    ("scenario", "expected_mode", "running_mode", "restart", "decided"),
    [
        (in_mode, "ipvs", "ipvs", False, True),
        (other_mode, "ipvs", "iptables", True, True),
        (metrics_off_log_says_iptables, "iptables", "iptables", False, True),
        (metrics_off_log_says_iptables, "ipvs", "iptables", True, True),
        (refused_crash_loop, "ipvs", "refused", True, True),
        (stopped, "ipvs", "ipvs", True, True),
        (not_said_yet, "ipvs", "unknown", False, False),
        (no_container, "ipvs", "unknown", False, True),
        (in_mode_with_leftovers, "ipvs", "ipvs", False, True),
        (other_proxy_mode_answer, "iptables", "userspace", True, True),
    ],
)
def test_running_mode_and_whether_a_restart_helps(node, capsys, scenario, expected_mode, running_mode, restart, decided):
    node.log = start_lines(T0, IPVS_LINE)
    scenario(node)
    result = run(node, capsys, expected_mode=expected_mode)
    assert (result["running_mode"], result["needs_restart"], result["decided"]) == (running_mode, restart, decided), result["problems"]
    if restart:
        assert result["ok"] is False


def test_docker_is_found_first_on_path(node, capsys, tmp_path, monkeypatch):
    # As Ansible finds tools: a docker earlier on PATH wins over /usr/bin's (a test puts its fake there, no root).
    def lookup(module, name, required=False, opt_dirs=None):
        # AnsibleModule.get_bin_path's search, for docker only (the other tools stay out of this test).
        if name != "docker":
            return None
        try:
            return get_bin_path(name, opt_dirs=opt_dirs)
        except ValueError:
            return None

    monkeypatch.setattr(AnsibleModule, "get_bin_path", lookup)
    monkeypatch.setenv("PATH", "%s:/usr/local/bin:/usr/bin:/bin" % tmp_path)
    node.log = start_lines(T0, IPVS_LINE)
    result = run(node, capsys)
    assert result["log"]["mode"] == "ipvs"
    assert [call[0] for call in node.calls()][:1] == ["inspect"]  # the fake answered
