#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: kube_proxy_info
short_description: Which proxy mode kube-proxy really runs in on an RKE node, with the evidence
version_added: 0.1.0
description:
  - Reads, in one module execution, everything that shows whether RKE's C(kube-proxy) container runs in the
    expected proxy mode, and says in words what is wrong when it does not.
  - The container's state (C(docker inspect)); the answer of kube-proxy's C(/proxyMode) endpoint on
    O(metrics_address), which is the authority on the mode; the C(kube-ipvs0) interface; and whether C(ipvsadm -Ln)
    lists the C(kubernetes) service address.
  - kube-proxy's log adds the evidence and the reasons. The proxier line (C(Using ipvs Proxier.) up to Kubernetes
    1.22, the quoted structured form from 1.23) is printed once, in the first seconds of a start, and a kube-proxy
    that logs at C(--v=2) pushes it out of any tail within hours; so it is read from the log of the container's
    current start (C(docker logs --since) its C(State.StartedAt), the first O(start_log_lines) lines), with the
    fallback and refusal messages (C(Can't use the IPVS proxier) up to 1.25; from 1.26 kube-proxy exits with
    C(can't use the IPVS proxier) and its reason, from 1.27 reasons such as C(Ipvs not supported) or a C(dummy VS) it
    could not create), the kernel modules kube-proxy names as missing and its ipset problem. Recent errors come from
    the last O(log_lines) lines of the same start.
  - When C(/proxyMode) does not answer (kube-proxy down, or its metrics server turned off), the log decides the mode.
  - The data path (O(data_path)) - from the node, a TCP connection to the C(kubernetes) service (the first address of
    O(service_cluster_ip_range), port O(service_port)), which kube-proxy's rules carry to the API server through IPVS
    or iptables' DNAT. No answer (a stale C(REJECT), a virtual server without a real server, no rule at all) is a
    problem naming the address.
  - The other mode's leftovers (O(leftovers)) - what the mode kube-proxy does not run in now left behind (iptables
    chains and rules, KUBE-* ipsets, IPVS virtual servers, C(kube-ipvs0)), found as M(rkeops.ipvs.kube_proxy_leftovers)
    finds them (read only here; that module removes them).
  - It says what to do about a kube-proxy that is not in O(expected_mode) (RV(running_mode), RV(needs_restart),
    RV(needs_recreate)), so that a play only acts on it.
  - It never changes anything; retry it with C(until) while kube-proxy restarts.
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  facts:
    support: none
  platform:
    platforms: posix
options:
  expected_mode:
    description: The proxy mode kube-proxy should run in; RV(ok) and RV(problems) are judged against it.
    type: str
    choices: [ipvs, iptables]
    default: ipvs
  container:
    description: The name of the kube-proxy container (RKE names it C(kube-proxy)).
    type: str
    default: kube-proxy
  service_cluster_ip_range:
    description:
      - C(services.kube-api.service_cluster_ip_range) of cluster.yml; the C(kubernetes) service has its first address.
    type: str
    default: 10.43.0.0/16
  service_port:
    description: The port of the C(kubernetes) service.
    type: int
    default: 443
  metrics_address:
    description:
      - kube-proxy's C(metrics-bind-address) (C(host:port)), where it answers C(/proxyMode); give the value
        M(rkeops.ipvs.rke_cluster_info) returns as RV(rkeops.ipvs.rke_cluster_info#module:metrics_bind_address).
      - An address that listens everywhere (C(0.0.0.0), C([::])) is asked on loopback; a host without a port gets
        kube-proxy's default port, 10249.
      - Empty means kube-proxy's metrics server is turned off; the mode is then read from its log alone.
    type: str
    default: 127.0.0.1:10249
  start_log_lines:
    description:
      - How many lines to read from the start of the container's current run. kube-proxy says which proxier it uses
        within its first lines; at C(--v=1) and above it first lists every flag, one line each.
    type: int
    default: 1000
  log_lines:
    description: How many of the last log lines of the container's current start to read for recent errors.
    type: int
    default: 2000
  data_path:
    description:
      - Open a TCP connection from the node to the C(kubernetes) service and report whether it was answered
        (RV(data_path)); no answer is a problem. V(false) skips the check.
    type: bool
    default: true
  data_path_timeout:
    description: Seconds to wait for the C(kubernetes) service to answer.
    type: int
    default: 3
  leftovers:
    description:
      - What to do with the other mode's leftovers, judged against the mode kube-proxy runs in now
        (RV(leftovers)). V(problem) reads them and counts them as a problem; V(report) reads them only;
        V(skip) does not read them (no C(iptables-save), C(ipset) or C(ipvsadm -S) run).
    type: str
    choices: [problem, report, skip]
    default: problem
"""

EXAMPLES = r"""
- name: Wait until kube-proxy runs in IPVS mode
  rkeops.ipvs.kube_proxy_info:
    service_cluster_ip_range: 10.43.0.0/16
  register: __kube_proxy
  until: __kube_proxy.ok
  retries: 24
  delay: 5

- name: Read cluster.yml on the admin host
  rkeops.ipvs.rke_cluster_info:
    path: /opt/rke/cluster.yml
  delegate_to: localhost
  run_once: true
  register: __cluster

- name: Ask kube-proxy where cluster.yml says it listens
  rkeops.ipvs.kube_proxy_info:
    service_cluster_ip_range: "{{ __cluster.service_cluster_ip_range }}"
    metrics_address: "{{ __cluster.metrics_bind_address }}"
  register: __kube_proxy
"""

RETURN = r"""
ok:
  description: Whether kube-proxy runs in O(expected_mode) by every account.
  returned: always
  type: bool
problems:
  description: What is wrong, in words, empty when RV(ok).
  returned: always
  type: list
  elements: str
  sample: ["kube-proxy fell back to iptables", "kernel modules not loaded: ip_vs_rr"]
container:
  description:
    - The container's C(exists), C(running), C(status), C(restart_count), C(started_at) and C(finished_at).
    - C(command_mode), the mode its command asks for (C(--proxy-mode), else V(iptables), kube-proxy's default); empty
      when there is no container, or when a C(--config) file may set the mode.
  returned: always
  type: dict
log:
  description: What kube-proxy's log says.
  returned: always
  type: dict
  contains:
    mode:
      description:
        - The proxier kube-proxy said it uses since the container's current start, V(ipvs), V(iptables), V(refused)
          (Kubernetes 1.26 and later exit rather than fall back) or V(none) (not yet said, or rotated away).
      type: str
      sample: ipvs
    mode_line:
      description: The line that says it.
      type: str
    fallback_lines:
      description: The last five lines that explain a fallback or a refusal.
      type: list
      elements: str
    missing_modules:
      description: The kernel modules kube-proxy names as not loaded (up to Kubernetes 1.26).
      type: list
      elements: str
    ipset_problem:
      description: What kube-proxy says about ipset, when it refuses IPVS for it.
      type: str
    reasons:
      description: kube-proxy's other reasons for refusing IPVS, in words (for example C(Ipvs not supported)).
      type: list
      elements: str
    since:
      description: The C(--since) the log of the current start was read with (seconds since the epoch), empty when
        the container has had one start and its log was read from the beginning.
      type: str
    start_lines:
      description: How many lines were read from the current start.
      type: int
    recent_errors:
      description: The last errors (klog C(E) and C(F) lines) of the current start's last O(log_lines) lines, each error once.
      type: list
      elements: str
    error:
      description: What C(docker logs) said when it could not read the log (for example a logging driver that cannot be read back).
      type: str
proxy_mode:
  description: What C(/proxyMode) answered, or null (no answer, or O(metrics_address) empty).
  returned: always
  type: str
  sample: ipvs
proxy_mode_error:
  description: Why C(/proxyMode) gave no answer.
  returned: always
  type: str
proxy_mode_url:
  description: The URL asked, from O(metrics_address); null when the metrics server is turned off.
  returned: always
  type: str
  sample: http://127.0.0.1:10249/proxyMode
kube_ipvs0:
  description: Whether the C(kube-ipvs0) interface exists.
  returned: always
  type: bool
virtual_servers:
  description: The virtual servers C(ipvsadm -Ln) lists.
  returned: always
  type: list
  elements: str
  sample: ["TCP 10.43.0.1:443 rr"]
kubernetes_service:
  description: The address of the C(kubernetes) service.
  returned: always
  type: str
  sample: 10.43.0.1:443
service_listed:
  description: Whether RV(virtual_servers) has the C(kubernetes) service.
  returned: always
  type: bool
running_ok:
  description:
    - Whether everything but the leftovers is as expected. Leftovers do not go away by waiting, so a retry loop
      waits on this rather than on RV(ok).
  returned: always
  type: bool
running_mode:
  description:
    - The mode kube-proxy runs in, as judged here. What C(/proxyMode) answered (V(ipvs), V(iptables), or another
      mode it names), which is the authority; without an answer, the log's RV(log.mode) when it is V(ipvs),
      V(iptables) or V(refused) (Kubernetes 1.26 and later exit rather than fall back); else V(unknown) (no
      container, or kube-proxy has not said yet).
  returned: always
  type: str
  sample: iptables
needs_restart:
  description:
    - Whether restarting the container (C(docker restart)) is what kube-proxy needs to reach O(expected_mode). It
      picks its proxier only when it starts, so a container that exists and runs in another mode, refused the mode,
      or is stopped, needs one.
    - No container is rke's to deploy, and a mode not yet known is no reason (RV(decided) is false then); a restart
      does not remove leftovers nor open the data path, so those are no reason either.
  returned: always
  type: bool
needs_recreate:
  description:
    - Whether the container must be created anew from cluster.yml's configuration to reach O(expected_mode) - its
      command asks for another mode (C(container.command_mode)). A restart starts the same command again, and
      C(rke up) starts a stopped container as it was; the repair step of the role rkeops.ipvs.ipvs removes a stopped
      one and runs C(rke up), which creates it, or recreates a running one. RV(needs_restart) is false then.
  returned: always
  type: bool
decided:
  description:
    - Whether this reading is enough to decide RV(needs_restart) - the container is missing, or RV(running_mode) is
      known. A kube-proxy just recreated by C(rke up) may not have said its mode yet; a retry loop before a restart
      waits on this.
  returned: always
  type: bool
data_path:
  description: The TCP connection from the node to the C(kubernetes) service.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether the connection was tried (O(data_path)).
      type: bool
    address:
      description: The address tried, RV(kubernetes_service).
      type: str
      sample: 10.43.0.1:443
    answered:
      description: Whether the connection was accepted; null when not checked.
      type: bool
    error:
      description: Why it was not (for example C([Errno 111] Connection refused), C(timed out)).
      type: str
leftovers:
  description: The other mode's leftovers on the node, in the shape M(rkeops.ipvs.kube_proxy_leftovers) returns as found.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether they were read; false with O(leftovers=skip) or when kube-proxy's mode is unknown.
      type: bool
    mode:
      description: The mode whose leftovers were looked for (the one kube-proxy does not run in).
      type: str
      sample: iptables
    count:
      description: How many chains, rules, ipsets, virtual servers and interfaces were found.
      type: int
    found:
      description: What was found - C(iptables) (table -> C(chains), C(rules)), C(ipsets), C(ipvs_services), C(interfaces).
      type: dict
    error:
      description: Why they could not be read (for example iptables not installed).
      type: str
"""

import json
import os
import shlex
import socket
from typing import Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_log import log_since, read_log, recent_errors, split_docker_log
from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_probes import kubernetes_service, metrics_url, split_address, virtual_servers
from ansible_collections.rkeops.ipvs.plugins.module_utils._kube_proxy_verdict import data_path_problems, leftover_problems, problems
from ansible_collections.rkeops.ipvs.plugins.module_utils._leftovers_node import gather
from ansible_collections.rkeops.ipvs.plugins.module_utils._node_commands import C_LOCALE


def command_mode(command: List[str]) -> str:
    """The mode a kube-proxy command line asks for: its --proxy-mode (rke writes `--proxy-mode=ipvs`, services.kubeproxy
    extra_args), else iptables, kube-proxy's default on Linux (the flag's help, cmd/kube-proxy/app/server.go: "If
    blank, use the best-available proxy (currently iptables)"). Empty when the mode may come from a --config file
    instead, or when this is not kube-proxy's command at all."""
    mode = None
    for index, part in enumerate(command):
        if part.startswith("--proxy-mode="):
            mode = part.split("=", 1)[1]
        elif part == "--proxy-mode" and index + 1 < len(command):
            mode = command[index + 1]
    if mode:
        return mode
    if any(part == "--config" or part.startswith("--config=") for part in command):
        return ""
    return "iptables" if any("kube-proxy" in part for part in command) else ""


def inspect_container(module: AnsibleModule, docker: Optional[str], name: str) -> Dict[str, object]:
    state = dict(exists=False, running=False, status="absent", restart_count=0, started_at="", finished_at="", command_mode="")
    if docker is None:
        state["status"] = "docker not installed"
        return state
    rc, out, _err = module.run_command([docker, "inspect", "--type", "container", name], environ_update=C_LOCALE)
    if rc != 0:
        return state
    data = json.loads(out)[0]
    status = data.get("State", {})
    config = data.get("Config") or {}
    state.update(
        command_mode=command_mode((config.get("Entrypoint") or []) + (config.get("Cmd") or [])),
        exists=True,
        # docker says Running while a container waits to be restarted; kube-proxy is not running then.
        running=bool(status.get("Running")) and not status.get("Restarting"),
        status=status.get("Status", "unknown"),
        restart_count=int(data.get("RestartCount", 0)),
        started_at=status.get("StartedAt", ""),
        finished_at=status.get("FinishedAt", ""),
    )
    return state


def read_start(module: AnsibleModule, docker: str, name: str, since: Optional[str], lines: int) -> Tuple[str, int, str]:
    """(the first lines of the container's current start, how many, docker's error), with docker's time stamps.

    `head` stops `docker logs` after those lines, however long kube-proxy has been logging since.
    """
    command = [docker, "logs", "--timestamps"] + (["--since", since] if since else []) + [name]
    pipeline = "%s 2>&1 | head -n %d" % (" ".join(shlex.quote(part) for part in command), max(lines, 1))
    _rc, out, _err = module.run_command(pipeline, use_unsafe_shell=True, environ_update=C_LOCALE)
    log, other = split_docker_log(out)
    return "\n".join(log), len(log), "; ".join(other)


def read_tail(module: AnsibleModule, docker: str, name: str, since: Optional[str], lines: int) -> str:
    """The last lines of the container's current start (an earlier run's errors are not this one's)."""
    command = [docker, "logs", "--timestamps"] + (["--since", since] if since else []) + ["--tail", str(max(lines, 0)), name]
    _rc, out, err = module.run_command(command, environ_update=C_LOCALE)
    # kube-proxy writes to stderr (klog), docker logs gives each stream on its own: merged in time order.
    log, _other = split_docker_log(out + "\n" + err)
    return "\n".join(log)


def probe_data_path(address: str, timeout: int) -> Dict[str, object]:
    """A TCP connection to the kubernetes service from this node: accepted, or why not."""
    host, port = split_address(address)
    try:
        connection = socket.create_connection((host, port), timeout=max(timeout, 1))
    except (OSError, socket.timeout) as exc:
        return dict(checked=True, address=address, answered=False, error=str(exc) or exc.__class__.__name__)
    connection.close()
    return dict(checked=True, address=address, answered=True, error="")


class LeftoversUnreadable(Exception):
    pass


class _ReadOnly:
    """The module as _leftovers.gather() uses it, except that a failed command is reported here, not fatal."""

    def __init__(self, module: AnsibleModule):
        self._module = module

    def get_bin_path(self, *args, **kwargs):
        return self._module.get_bin_path(*args, **kwargs)

    def run_command(self, args, **kwargs):
        kwargs.setdefault("environ_update", C_LOCALE)
        return self._module.run_command(args, **kwargs)

    def fail_json(self, msg, **_kwargs):
        raise LeftoversUnreadable(msg)


def read_leftovers(module: AnsibleModule, running_mode: Optional[str], policy: str) -> Dict[str, object]:
    """The other mode's leftovers, judged against the mode kube-proxy runs in (unknown: not read)."""
    other = {"ipvs": "iptables", "iptables": "ipvs"}.get(running_mode or "")
    result = dict(checked=False, mode=other or "", count=0, found={}, error="")
    if policy == "skip" or other is None:
        return result
    try:
        _commands, _saved, found, _diff = gather(_ReadOnly(module), running_mode)
    except (LookupError, LeftoversUnreadable) as exc:
        result["error"] = str(exc)
        return result
    found.pop("backends", None)
    result.update(checked=True, count=int(found.get("count", 0)), found=found)
    return result


def judge_mode(proxy_mode: Optional[str], log_mode: str) -> str:
    """The mode kube-proxy runs in: /proxyMode's answer when it gave one, else what its log says, else unknown."""
    if proxy_mode:
        return proxy_mode
    return log_mode if log_mode in ("ipvs", "iptables", "refused") else "unknown"


def needs_recreate(expected: str, running_ok: bool, container: Dict[str, object]) -> bool:
    """A container whose command asks for another mode: a restart starts the same command again, and rke up starts a
    stopped container as it was (rancher/rke docker/docker.go DoRunContainer); only a container created anew from
    cluster.yml's configuration gets the mode."""
    if running_ok or not container["exists"]:
        return False
    return container["command_mode"] not in ("", expected)


def needs_restart(expected: str, running_ok: bool, container: Dict[str, object], running_mode: str) -> bool:
    """A container that exists and runs in the other mode, refused the mode, or is stopped: kube-proxy picks its
    proxier only when it starts. No container is rke's to deploy; a mode not yet known is no reason; a command that
    asks for another mode needs the container recreated, not restarted."""
    if running_ok or not container["exists"] or needs_recreate(expected, running_ok, container):
        return False
    return running_mode not in ("unknown", expected) or not container["running"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            expected_mode=dict(type="str", choices=["ipvs", "iptables"], default="ipvs"),
            container=dict(type="str", default="kube-proxy"),
            service_cluster_ip_range=dict(type="str", default="10.43.0.0/16"),
            service_port=dict(type="int", default=443),
            metrics_address=dict(type="str", default="127.0.0.1:10249"),
            start_log_lines=dict(type="int", default=1000),
            log_lines=dict(type="int", default=2000),
            data_path=dict(type="bool", default=True),
            data_path_timeout=dict(type="int", default=3),
            leftovers=dict(type="str", choices=["problem", "report", "skip"], default="problem"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        service = kubernetes_service(params["service_cluster_ip_range"], params["service_port"])
    except ValueError as exc:
        module.fail_json(msg="service_cluster_ip_range %r is not a network: %s" % (params["service_cluster_ip_range"], exc))
    try:
        url = metrics_url(params["metrics_address"])
    except ValueError as exc:
        module.fail_json(
            msg="metrics_address: %s; give kube-proxy's metrics-bind-address as host:port (for example 127.0.0.1:10249), "
            "or an empty string when its metrics server is turned off" % exc
        )
    # Found on PATH, as Ansible finds tools; /usr/local/bin only when PATH lacks it (EL's sudo secure_path has no
    # /usr/local/bin, where docker's static binaries go).
    docker = module.get_bin_path("docker") or module.get_bin_path("docker", opt_dirs=["/usr/local/bin"])
    container = inspect_container(module, docker, params["container"])
    since = log_since(container["started_at"], container["finished_at"])
    start_text, start_lines, log_error, tail_text = "", 0, "", ""
    if container["exists"]:
        start_text, start_lines, log_error = read_start(module, docker, params["container"], since, params["start_log_lines"])
        tail_text = read_tail(module, docker, params["container"], since, params["log_lines"])
    log = read_log(start_text)
    log.update(since=since or "", start_lines=start_lines, recent_errors=recent_errors(tail_text), error=log_error)
    proxy_mode, proxy_error = None, ""
    if url is None:
        proxy_error = "kube-proxy's metrics server is turned off (metrics_address is empty)"
    else:
        try:
            proxy_mode = open_url(url, timeout=3, use_proxy=False).read().decode("utf-8", "replace").strip()
        except Exception as exc:  # noqa: BLE001 - any failure to answer is reported, not raised
            proxy_error = str(exc)
    # PATH, then the sbin directories (get_bin_path adds them).
    ipvsadm = module.get_bin_path("ipvsadm")
    servers = []
    if ipvsadm:
        rc, out, _err = module.run_command([ipvsadm, "-Ln"], environ_update=C_LOCALE)
        servers = virtual_servers(out) if rc == 0 else []
    facts = dict(
        container=container,
        log=log,
        proxy_mode=proxy_mode,
        proxy_mode_error=proxy_error,
        proxy_mode_url=url,
        kube_ipvs0=os.path.exists("/sys/class/net/kube-ipvs0"),
        virtual_servers=servers,
        kubernetes_service=service,
        service_listed=any(server.split()[1] == service for server in servers),
    )
    # The leftovers are judged against a mode kube-proxy runs a proxier in: /proxyMode's ipvs or iptables, else the
    # log's.
    leftovers_mode = proxy_mode if proxy_mode in ("ipvs", "iptables") else log["mode"]
    facts["data_path"] = (
        probe_data_path(service, params["data_path_timeout"]) if params["data_path"] else dict(checked=False, address=service, answered=None, error="")
    )
    facts["leftovers"] = read_leftovers(module, leftovers_mode if leftovers_mode in ("ipvs", "iptables") else None, params["leftovers"])
    running = problems(params["expected_mode"], facts) + data_path_problems(facts["data_path"])
    found = running + leftover_problems(facts["leftovers"], params["leftovers"])
    running_mode = judge_mode(proxy_mode, log["mode"])
    module.exit_json(
        changed=False,
        ok=not found,
        running_ok=not running,
        problems=found,
        running_mode=running_mode,
        needs_restart=needs_restart(params["expected_mode"], not running, container, running_mode),
        needs_recreate=needs_recreate(params["expected_mode"], not running, container),
        decided=running_mode != "unknown" or not container["exists"],
        **facts,
    )


if __name__ == "__main__":
    main()
