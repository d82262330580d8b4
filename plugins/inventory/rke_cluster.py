# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: rke_cluster
short_description: The nodes of an RKE cluster.yml as an Ansible inventory
version_added: 0.1.0
description:
  - Reads the C(nodes) of an RKE (v1) C(cluster.yml), so that playbooks target exactly the nodes RKE deploys to,
    with the SSH settings RKE itself uses. A node added to the cluster cannot be missing from the inventory.
  - One host per node, named after C(hostname_override) when it is set, otherwise after C(address). C(ansible_host)
    comes from C(address), C(ansible_port) from C(port) (22 by default), C(ansible_user) from C(user), and
    C(ansible_ssh_private_key_file) from the node's C(ssh_key_path) or else the top-level one (C(~/.ssh/id_rsa) when
    neither is set), with C(~) expanded as rke does.
  - "Host variables: C(rke_address), C(rke_internal_address), C(rke_roles), C(rke_labels), C(rke_taints),
    C(rke_hostname_override), and C(rke_ssh_key_inline) / C(rke_ssh_agent_auth) (see below)."
  - Groups C(etcd), C(controlplane) and C(worker) (after the node's C(role) list, with O(role_group_prefix) in front)
    and O(all_group) holding every node.
  - A C(bastion_host) with an address becomes an SSH C(ProxyCommand) in C(ansible_ssh_common_args), so every node
    is reached through the bastion as rke reaches it. A node's C(ssh_cert_path) (else the top-level one) becomes
    C(-o CertificateFile=<path>) in C(ansible_ssh_extra_args), C(~) expanded as rke does.
  - Inline keys (C(ssh_key), C(ssh_cert)) are never copied into the inventory or written to disk, so
    C(ansible-inventory --list) cannot show them. Such nodes get C(rke_ssh_key_inline=true) and are reached with
    the key file of C(ssh_key_path) when one is set, otherwise through your ssh-agent (C(ssh-add) the key) or an
    C(ansible_ssh_private_key_file) you set yourself, for example with O(compose) or group_vars.
  - The file is read as YAML 1.1 without type conversion, as rke reads it. Missing or invalid files, a missing or
    empty C(nodes) list, a node without C(address), an unknown role, a C(port) that is not a number, and two nodes
    with the same address and port or the same inventory name are refused with an error naming the file, the line
    and the node.
  - The inventory source is a YAML file whose name ends in C(rke_cluster.yml) or C(rke_cluster.yaml).
author:
  - rkeops.ipvs maintainers (@rkeops)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it marks the file as a source for it.
    type: str
    required: true
    choices: [rkeops.ipvs.rke_cluster]
  cluster_yml:
    description:
      - Path of RKE's C(cluster.yml). A relative path is taken from the directory of the inventory source file;
        C(~) is expanded.
    type: str
    required: true
  all_group:
    description: The group that holds every node of the cluster.
    type: str
    default: rke_nodes
  role_group_prefix:
    description: Put in front of the role groups' names, for example C(rke_) for C(rke_etcd), C(rke_worker).
    type: str
    default: ""
"""

EXAMPLES = r"""
# inventory/cluster.rke_cluster.yml: every node of cluster.yml, with a group per value of the label "zone"
# and the Python interpreter set on all of them.
plugin: rkeops.ipvs.rke_cluster
cluster_yml: ../cluster.yml
keyed_groups:
  - key: rke_labels.zone | default('none')
    prefix: zone
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import os
import shlex

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml, ClusterYmlError, plain
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import MappingNode, SequenceNode

RKE_ROLES = ("etcd", "controlplane", "worker")
DEFAULT_KEY_PATH = "~/.ssh/id_rsa"
DEFAULT_PORT = "22"

# A problem with cluster.yml, worded for its owner and never quoting a secret: the reader's own error.
ClusterError = ClusterYmlError


def text_of(value):
    return value.strip() if isinstance(value, str) else ""


def expand(path):
    """rke expands a leading ~ to the home directory of the user running it."""
    return os.path.expanduser(path) if path else path


def proxy_command(bastion, default_key):
    """ssh's ProxyCommand that reaches a node through rke's bastion_host."""
    parts = ["ssh", "-W", "%h:%p", "-p", text_of(bastion.get("port")) or DEFAULT_PORT]
    key = expand(text_of(bastion.get("ssh_key_path")) or default_key)
    if key:
        parts += ["-i", key]
    user = text_of(bastion.get("user"))
    if user:
        parts += ["-l", user]
    parts.append(text_of(bastion.get("address")))
    return "-o ProxyCommand=" + shlex.quote(" ".join(shlex.quote(part) if part != "%h:%p" else part for part in parts))


def read_cluster(path):
    """The hosts of cluster.yml: a list of (name, hostvars, roles), checked as described in DOCUMENTATION."""
    cluster = ClusterYml.load(path)
    source = cluster.source
    nodes = cluster.node("nodes")
    if nodes is None or (isinstance(nodes, SequenceNode) and not nodes.value):
        raise cluster.error("%s has no nodes: list the cluster's nodes under 'nodes:' (rke refuses a cluster without nodes)" % path)
    if not isinstance(nodes, SequenceNode):
        raise cluster.error("%s: 'nodes' must be a list of nodes" % source.where(nodes))
    top = plain(cluster.root)
    top_key_path = text_of(top.get("ssh_key_path")) or DEFAULT_KEY_PATH
    top_inline = bool(text_of(top.get("ssh_key")))
    bastion = top.get("bastion_host") if isinstance(top.get("bastion_host"), dict) else {}
    proxy = proxy_command(bastion, top_key_path) if text_of(bastion.get("address")) else ""

    hosts, names, endpoints = [], {}, {}
    for index, node_node in enumerate(nodes.value, start=1):
        where = "%s: node %d" % (source.where(node_node), index)
        if not isinstance(node_node, MappingNode):
            raise cluster.error("%s is not a mapping with address, user and role" % where)
        node = plain(node_node)
        address = text_of(node.get("address"))
        if not address:
            raise cluster.error("%s has no address: every node needs the address rke connects to" % where)
        name = text_of(node.get("hostname_override")) or address
        port = text_of(node.get("port")) or DEFAULT_PORT
        if not port.isdigit():
            raise cluster.error("%s (%s): port must be a number" % (where, name))
        # Nodes behind one NAT address differ by port, so the SSH endpoint is address and port.
        endpoint = "%s:%s" % (address, port)
        if endpoint in endpoints:
            raise cluster.error("%s has the same address and port %s as %s; rke needs each node once" % (where, endpoint, endpoints[endpoint]))
        if name in names:
            raise cluster.error("%s has the same name %s as %s; give each node its own hostname_override" % (where, name, names[name]))
        endpoints[endpoint] = names[name] = "node %d (line %d)" % (index, node_node.start_mark.line + 1)
        roles = node.get("role")
        roles = [roles] if isinstance(roles, str) else roles or []
        unknown = [str(role) for role in roles if role not in RKE_ROLES]
        if unknown:
            raise cluster.error("%s (%s) has unknown role(s) %s; rke knows %s" % (where, name, ", ".join(unknown), ", ".join(RKE_ROLES)))
        hostvars = {
            "ansible_host": address,
            "ansible_port": int(port),
            "rke_address": address,
            "rke_internal_address": text_of(node.get("internal_address")) or address,
            "rke_hostname_override": text_of(node.get("hostname_override")),
            "rke_roles": list(roles),
            "rke_labels": node.get("labels") or {},
            "rke_taints": node.get("taints") or [],
            "rke_ssh_key_inline": bool(text_of(node.get("ssh_key"))) or (top_inline and not text_of(node.get("ssh_key_path"))),
            "rke_ssh_agent_auth": text_of(node.get("ssh_agent_auth") or top.get("ssh_agent_auth")).lower() == "true",
        }
        user = text_of(node.get("user"))
        if user:
            hostvars["ansible_user"] = user
        key_path = text_of(node.get("ssh_key_path")) or text_of(top.get("ssh_key_path"))
        if key_path or not hostvars["rke_ssh_key_inline"]:
            hostvars["ansible_ssh_private_key_file"] = expand(key_path or DEFAULT_KEY_PATH)
        cert_path = text_of(node.get("ssh_cert_path")) or text_of(top.get("ssh_cert_path"))
        if cert_path:
            hostvars["ansible_ssh_extra_args"] = "-o CertificateFile=" + shlex.quote(expand(cert_path))
        if proxy:
            hostvars["ansible_ssh_common_args"] = proxy
        hosts.append((name, hostvars, list(roles)))
    return hosts


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "rkeops.ipvs.rke_cluster"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("rke_cluster.yml", "rke_cluster.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cluster_yml = os.path.expanduser(self.get_option("cluster_yml"))
        if not os.path.isabs(cluster_yml):
            cluster_yml = os.path.join(os.path.dirname(os.path.abspath(path)), cluster_yml)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                hosts = None
        if hosts is None:
            try:
                hosts = read_cluster(cluster_yml)
            except ClusterError as exc:
                raise AnsibleParserError("%s (inventory source %s)" % (exc, path)) from None
            if self.get_option("cache"):
                self._cache[cache_key] = [[name, hostvars, roles] for name, hostvars, roles in hosts]
        self._populate(hosts)

    def _populate(self, hosts):
        strict = self.get_option("strict")
        all_group = self.inventory.add_group(self.get_option("all_group"))
        prefix = self.get_option("role_group_prefix")
        for name, hostvars, roles in hosts:
            self.inventory.add_host(name, group=all_group)
            for role in roles:
                self.inventory.add_host(name, group=self.inventory.add_group(prefix + role))
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
