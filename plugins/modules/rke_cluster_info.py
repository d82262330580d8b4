#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rke_cluster_info
short_description: Cluster-wide values of an RKE cluster.yml, and the files rke keeps beside it
version_added: 0.1.0
description:
  - Reads an RKE (v1) C(cluster.yml) on the host that holds it (the RKE admin host) and returns the values that
    tasks on the nodes need, read the way rke reads them (YAML 1.1, every value text, the last of two equal keys
    wins), with rke's defaults filled in.
  - C(services.kube-api.service_cluster_ip_range), C(kubernetes_version), kube-proxy's C(extra_args) and the
    address kube-proxy serves its metrics and C(/proxyMode) on.
  - The paths of the state file (C(cluster.rkestate)) and of the admin kubeconfig (C(kube_config_cluster.yml)) as
    rke derives them from the path of the config file, and whether they exist.
  - It never returns anything secret (SSH keys, passwords, certificates) and never reads the state file or the
    kubeconfig, which hold keys; errors name the file, line and key, never the content.
  - The file is refused when it is not valid YAML, not a mapping, or when a value read here is of a kind rke
    cannot read (for example a list where rke expects text); an unrendered Jinja template is named as such.
  - Requires PyYAML on the host that runs the module (it comes with ansible-core on the controller).
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - Path of RKE's C(cluster.yml), the file given to C(rke up --config). Symbolic links are followed to read it,
        but the state file and the kubeconfig are named after this path, as rke names them.
    type: path
    required: true
    aliases: [cluster_yml]
notes:
  - rke names the state file after the config file with its extension, whatever it is, replaced by C(.rkestate)
    (C(cluster.yml), C(cluster.yaml) and C(cluster.conf) all give C(cluster.rkestate)), and the kubeconfig
    C(kube_config_) followed by the config file's whole name.
seealso:
  - module: rkeops.ipvs.cluster_kubeproxy
  - module: rkeops.ipvs.kube_proxy_info
  - name: RKE cluster.yml options
    description: The services of cluster.yml and their defaults.
    link: https://rke.docs.rancher.com/config-options/services
"""

EXAMPLES = r"""
- name: Read cluster.yml on the admin host
  rkeops.ipvs.rke_cluster_info:
    path: /opt/rke/cluster.yml
  delegate_to: localhost
  run_once: true
  register: __cluster

- name: Check kube-proxy against the cluster's own service range
  rkeops.ipvs.kube_proxy_info:
    service_cluster_ip_range: "{{ __cluster.service_cluster_ip_range }}"
    metrics_address: "{{ __cluster.metrics_bind_address }}"

- name: Refuse to run rke up without its state file
  ansible.builtin.assert:
    that: __cluster.state_file_exists
    fail_msg: "{{ __cluster.state_file }} is missing: rke up would build a new cluster"
"""

RETURN = r"""
cluster_yml:
  description:
    - The absolute path of the config file, as given (symbolic links not resolved).
    - Not named C(path), so that Ansible does not add the file's owner, mode and size to the result.
  returned: always
  type: str
  sample: /opt/rke/cluster.yml
service_cluster_ip_range:
  description: C(services.kube-api.service_cluster_ip_range); RKE's default V(10.43.0.0/16) when unset or empty.
  returned: always
  type: str
  sample: 10.43.0.0/16
kubernetes_version:
  description: C(kubernetes_version); V(null) when unset, in which case rke deploys the default of its own release.
  returned: always
  type: str
  sample: v1.26.8-rancher1-1
kube_proxy_extra_args:
  description: C(services.kubeproxy.extra_args) as rke hands them to kube-proxy (every value text; a null is empty).
  returned: always
  type: dict
  sample: {proxy-mode: ipvs, ipvs-scheduler: rr}
metrics_bind_address:
  description:
    - Where kube-proxy serves its metrics and C(/proxyMode), from its C(metrics-bind-address) flag; kube-proxy's
      default V(127.0.0.1:10249) when unset, port V(10249) added when only a host is given.
    - V(null) when the flag is set to an empty value, which turns kube-proxy's metrics server off.
  returned: always
  type: str
  sample: 127.0.0.1:10249
state_file:
  description: The absolute path of rke's state file, C(cluster.rkestate), derived from RV(cluster_yml) as rke derives it.
  returned: always
  type: str
  sample: /opt/rke/cluster.rkestate
state_file_exists:
  description: Whether RV(state_file) exists.
  returned: always
  type: bool
kube_config_file:
  description: The absolute path of the admin kubeconfig rke writes beside the config file.
  returned: always
  type: str
  sample: /opt/rke/kube_config_cluster.yml
kube_config_exists:
  description: Whether RV(kube_config_file) exists.
  returned: always
  type: bool
space:
  description:
    - The room beside the config file, for a play to check before it writes there - backups of the config and state
      files, the patched config, the state rke rewrites, rke's log.
  returned: always
  type: dict
  contains:
    directory:
      description: The directory of RV(cluster_yml).
      type: str
      sample: /opt/rke
    free_bytes:
      description: The bytes an unprivileged user can still write in RV(space.directory)'s file system (C(statvfs)).
      type: int
    cluster_yml_bytes:
      description: The size of RV(cluster_yml).
      type: int
    state_file_bytes:
      description: The size of RV(state_file), 0 when it is missing.
      type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml, ClusterYmlError
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import HAS_YAML, YAML_IMPORT_ERROR


def cluster_info(cluster: ClusterYml) -> dict:
    """What the module returns about ``cluster`` (whose name is the config path); raises ClusterYmlError."""
    return dict(
        cluster_yml=cluster.name,
        service_cluster_ip_range=cluster.service_cluster_ip_range,
        kubernetes_version=cluster.kubernetes_version,
        kube_proxy_extra_args=cluster.kubeproxy_extra_args,
        metrics_bind_address=cluster.metrics_bind_address,
        state_file=cluster.state_file,
        state_file_exists=os.path.exists(cluster.state_file),
        kube_config_file=cluster.kube_config_file,
        kube_config_exists=os.path.exists(cluster.kube_config_file),
        space=space(cluster.name, cluster.state_file),
    )


def space(cluster_yml: str, state_file: str) -> dict:
    """The sizes of the files a run copies and rewrites beside cluster.yml, and the room left there for them."""
    found = os.statvfs(os.path.dirname(cluster_yml))
    return dict(
        directory=os.path.dirname(cluster_yml),
        free_bytes=found.f_bavail * found.f_frsize,
        cluster_yml_bytes=os.path.getsize(cluster_yml),
        state_file_bytes=os.path.getsize(state_file) if os.path.exists(state_file) else 0,
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True, aliases=["cluster_yml"])),
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=to_native(YAML_IMPORT_ERROR))
    path = os.path.abspath(module.params["path"])
    try:
        info = cluster_info(ClusterYml.load(path))
    except ClusterYmlError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
