#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_proxy_info
short_description: Which proxy mode kube-proxy really runs in on an RKE node, with the evidence
version_added: 0.1.0
description:
  - Reads, in one module execution, everything that shows whether RKE's C(kube-proxy) container runs in the
    expected proxy mode, and says in words what is wrong when it does not.
  - The container's state (C(docker inspect)); its log (C(docker logs)), in the wordings of the Kubernetes
    versions RKE ships (C(Using ipvs Proxier.) up to 1.20, the quoted structured form from 1.21) and the
    fallback or refusal messages (C(Can't use ipvs proxier, trying iptables proxier), C(Can't use the IPVS
    proxier), C(Error running ProxyServer), C(Using iptables Proxier)), with the kernel modules kube-proxy names as
    missing; the answer of kube-proxy's C(/proxyMode) endpoint; the C(kube-ipvs0) interface; and whether
    C(ipvsadm -Ln) lists the C(kubernetes) service address.
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
  proxy_mode_url:
    description: kube-proxy's metrics endpoint that answers the proxy mode.
    type: str
    default: http://127.0.0.1:10249/proxyMode
  log_lines:
    description: How many of the container's last log lines to read.
    type: int
    default: 2000
"""

EXAMPLES = r"""
- name: Wait until kube-proxy runs in IPVS mode
  rkeops.ipvs.kube_proxy_info:
    service_cluster_ip_range: 10.43.0.0/16
  register: __kube_proxy
  until: __kube_proxy.ok
  retries: 24
  delay: 5
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
  description: The container's C(exists), C(running), C(status), C(restart_count) and C(started_at).
  returned: always
  type: dict
log:
  description:
    - C(mode), the proxier kube-proxy last said it uses (V(ipvs), V(iptables), V(refused) or V(none)), C(mode_line),
      the last C(fallback_lines), the C(missing_modules) they name, and an C(ipset_problem).
  returned: always
  type: dict
proxy_mode:
  description: What O(proxy_mode_url) answered, or null.
  returned: always
  type: str
  sample: ipvs
proxy_mode_error:
  description: Why O(proxy_mode_url) gave no answer.
  returned: always
  type: str
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
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.rkeops.ipvs.plugins.module_utils._kmod import C_LOCALE
from ansible_collections.rkeops.ipvs.plugins.module_utils._kubeproxy_status import (
    kubernetes_service,
    problems,
    read_log,
    virtual_servers,
)


def inspect_container(module: AnsibleModule, docker: str | None, name: str) -> dict:
    state = dict(exists=False, running=False, status="absent", restart_count=0, started_at="")
    if docker is None:
        state["status"] = "docker not installed"
        return state
    rc, out, _err = module.run_command([docker, "inspect", "--type", "container", name], environ_update=C_LOCALE)
    if rc != 0:
        return state
    data = json.loads(out)[0]
    status = data.get("State", {})
    state.update(
        exists=True,
        running=bool(status.get("Running")),
        status=status.get("Status", "unknown"),
        restart_count=int(data.get("RestartCount", 0)),
        started_at=status.get("StartedAt", ""),
    )
    return state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            expected_mode=dict(type="str", choices=["ipvs", "iptables"], default="ipvs"),
            container=dict(type="str", default="kube-proxy"),
            service_cluster_ip_range=dict(type="str", default="10.43.0.0/16"),
            service_port=dict(type="int", default=443),
            proxy_mode_url=dict(type="str", default="http://127.0.0.1:10249/proxyMode"),
            log_lines=dict(type="int", default=2000),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        service = kubernetes_service(params["service_cluster_ip_range"], params["service_port"])
    except ValueError as exc:
        module.fail_json(msg="service_cluster_ip_range %r is not a network: %s" % (params["service_cluster_ip_range"], exc))
    docker = module.get_bin_path("docker", opt_dirs=["/usr/bin", "/usr/local/bin"])
    container = inspect_container(module, docker, params["container"])
    log_text = ""
    if container["exists"]:
        _rc, out, err = module.run_command([docker, "logs", "--tail", str(params["log_lines"]), params["container"]], environ_update=C_LOCALE)
        log_text = out + "\n" + err
    proxy_mode, proxy_error = None, ""
    try:
        proxy_mode = open_url(params["proxy_mode_url"], timeout=3, use_proxy=False).read().decode("utf-8", "replace").strip()
    except Exception as exc:  # noqa: BLE001 - any failure to answer is reported, not raised
        proxy_error = str(exc)
    ipvsadm = module.get_bin_path("ipvsadm", opt_dirs=["/usr/sbin", "/sbin"])
    servers = []
    if ipvsadm:
        rc, out, _err = module.run_command([ipvsadm, "-Ln"], environ_update=C_LOCALE)
        servers = virtual_servers(out) if rc == 0 else []
    facts = dict(
        container=container,
        log=read_log(log_text),
        proxy_mode=proxy_mode,
        proxy_mode_error=proxy_error,
        proxy_mode_url=params["proxy_mode_url"],
        kube_ipvs0=os.path.exists("/sys/class/net/kube-ipvs0"),
        virtual_servers=servers,
        kubernetes_service=service,
        service_listed=any(server.split()[1] == service for server in servers),
    )
    found = problems(params["expected_mode"], facts)
    module.exit_json(changed=False, ok=not found, problems=found, **facts)


if __name__ == "__main__":
    main()
