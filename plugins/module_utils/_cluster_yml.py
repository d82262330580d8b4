# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of an RKE (v1) cluster.yml, for every module and plugin of the collection.

Private to the collection: plain functions and a class, testable without Ansible.

``read_text`` reads the bytes (clear errors for a missing, unreadable or looping path, a directory, text that is
not UTF-8); ``ClusterYml`` composes the text once into nodes with marks, refuses what is not a mapping or has keys
rke cannot read, and gives the composed root (for editors), rke's non-strict view of any node (``plain``) and a
few cluster-wide values.
The files rke writes beside cluster.yml are named as rke names them (``state_file_path``, ``kube_config_path``).

RKE reads cluster.yml with go-yaml v2 (YAML 1.1, not strict): every scalar is text for it, and of two equal
keys in one mapping the last one wins. Errors name the file, line and key and never quote file content:
cluster.yml holds SSH keys, passwords and certificates.
"""

import errno
import os
from typing import Optional

from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import (
    JINJA_RE,
    MappingNode,
    ScalarNode,
    SequenceNode,
    Source,
    YamlEditError,
    check_keys,
    compose,
    entry,
    is_null,
    kind,
)

# rancher/rke cluster/defaults.go: DefaultServiceClusterIPRange, used when services.kube-api leaves it empty.
DEFAULT_SERVICE_CLUSTER_IP_RANGE = "10.43.0.0/16"
# rancher/rke cluster/state.go (stateFileExt) and pki/constants.go (KubeAdminConfigPrefix).
STATE_FILE_EXT = ".rkestate"
KUBE_CONFIG_PREFIX = "kube_config_"
# kube-proxy's --metrics-bind-address default; a bare IP gets the port appended (kubernetes pkg/proxy/util
# AppendPortIfNeeded, IPv6 in brackets). Its metrics server also answers /proxyMode.
DEFAULT_METRICS_BIND_ADDRESS = "127.0.0.1:10249"
METRICS_PORT = 10249
JINJA_HINT = " The file contains '{{', '{%' or '{#': if it is an unrendered Jinja template, render it first."


class ClusterYmlError(YamlEditError):
    """A problem with cluster.yml, worded for its owner, naming file, line and key, never quoting content."""


def read_text(path: str) -> tuple:
    """(real path, text) of the cluster.yml at ``path``, symbolic links followed. Raises ClusterYmlError."""
    prefix = "cannot read RKE cluster file %s: " % path
    try:
        real = os.path.realpath(path)
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ClusterYmlError(prefix + "symbolic link loop; give the path of the real cluster.yml") from None
        if exc.errno == errno.ENOENT:
            raise ClusterYmlError(prefix + "no such file; give the path of RKE's cluster.yml (the file given to rke up --config)") from None
        raise ClusterYmlError(prefix + "it cannot be read (%s)" % exc.strerror) from None
    if os.path.isdir(real):
        raise ClusterYmlError(prefix + "it is a directory; give the path of the cluster.yml file inside it")
    try:
        with open(real, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ClusterYmlError(prefix + "it cannot be read (%s); run as a user that can read it (become: true?)" % exc.strerror) from None
    try:
        return real, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClusterYmlError(prefix + "byte %d is not UTF-8; RKE reads cluster.yml as UTF-8 text" % exc.start) from None


def _config_parts(config_path: str) -> tuple:
    # rke: baseDir := filepath.Dir(configPath) ... fileName := filepath.Base(configPath).
    return os.path.dirname(config_path), os.path.basename(config_path)


def state_file_path(config_path: str) -> str:
    """cluster.rkestate as rke derives it from the path given to ``rke up --config``.

    rancher/rke cluster/state.go GetStateFilePath: strings.TrimSuffix(path, filepath.Ext(path)) + ".rkestate",
    where Go's filepath.Ext is everything from the last dot of the file name, whatever the extension
    (cluster.yml, cluster.yaml, cluster.conf, cluster.YML -> cluster.rkestate; my.prod.yml -> my.prod.rkestate).
    """
    folder, name = _config_parts(config_path)
    dot = name.rfind(".")
    stem = name[:dot] if dot >= 0 else name
    return os.path.join(folder, stem + STATE_FILE_EXT)


def kube_config_path(config_path: str) -> str:
    """The admin kubeconfig rke writes beside cluster.yml: ``kube_config_`` + the config file's whole name.

    rancher/rke pki/util.go GetLocalKubeConfig: baseDir + KubeAdminConfigPrefix + filepath.Base(configPath).
    """
    folder, name = _config_parts(config_path)
    return os.path.join(folder, KUBE_CONFIG_PREFIX + name)


def with_metrics_port(address: str) -> str:
    """A kube-proxy bind address with its port: kept when it has one, the metrics port added when only a host is given."""
    if address.startswith("["):
        return address if "]:" in address else "%s:%d" % (address, METRICS_PORT)
    if address.count(":") == 1:
        return address
    if ":" in address:  # a bare IPv6 address
        return "[%s]:%d" % (address, METRICS_PORT)
    return "%s:%d" % (address, METRICS_PORT)


def plain(node):
    """A composed node as rke's non-strict reader sees it: every scalar a string, null None, the last equal key wins."""
    if isinstance(node, MappingNode):
        return {key.value: plain(value) for key, value in node.value if isinstance(key, ScalarNode)}
    if isinstance(node, SequenceNode):
        return [plain(item) for item in node.value]
    if node is None or is_null(node):
        return None
    return node.value


class ClusterYml:
    """cluster.yml composed once: ``source`` (text and lines), ``root`` (a MappingNode), and rke's reading of it."""

    def __init__(self, text: str, name: str):
        self.name = name
        self.source = Source(text, name)
        self.jinja = bool(JINJA_RE.search(text))
        try:
            root = compose(self.source)
        except YamlEditError as exc:
            raise ClusterYmlError(str(exc)) from None
        if root is None:
            raise self.error("%s: the file is empty; RKE's cluster.yml must be a mapping (nodes:, services:, ...)" % name)
        if not isinstance(root, MappingNode):
            raise self.error("%s: the document is %s, but RKE's cluster.yml must be a mapping (nodes:, services:, ...)" % (self.source.where(root), kind(root)))
        try:
            check_keys(self.source, root)  # rke cannot read a key that is a list or a mapping (an unquoted {{ }})
        except YamlEditError as exc:
            raise ClusterYmlError(str(exc)) from None
        self.root = root

    @classmethod
    def load(cls, path: str) -> "ClusterYml":
        """Read and compose the file at ``path``; errors name ``path`` as given."""
        _real, text = read_text(path)
        return cls(text, path)

    def error(self, message: str) -> ClusterYmlError:
        """An error about this file, with a hint when it looks like an unrendered Jinja template (known from the one read)."""
        if self.jinja and "unrendered Jinja template" not in message:
            message += JINJA_HINT
        return ClusterYmlError(message)

    def node(self, *names):
        """The node at key path ``names`` as rke reads it (last equal key wins); None when unset or null on the way."""
        node, path = self.root, []
        for name in names:
            if node is None or is_null(node):
                return None
            if not isinstance(node, MappingNode):
                raise self.error("%s: %s is %s, but RKE expects a mapping there" % (self.source.where(node), ".".join(path), kind(node)))
            found = entry(node, name, last=True)
            if found is None:
                return None
            node = found[1]
            path.append(name)
        return None if node is None or is_null(node) else node

    def text(self, *names) -> Optional[str]:
        """The text of the scalar at key path ``names``, or None when unset, null or empty."""
        node = self.node(*names)
        if node is None:
            return None
        if not isinstance(node, ScalarNode):
            raise self.error("%s: %s is %s, but RKE expects a single value" % (self.source.where(node), ".".join(names), kind(node)))
        return node.value or None

    @property
    def service_cluster_ip_range(self) -> str:
        """services.kube-api.service_cluster_ip_range, RKE's default 10.43.0.0/16 when unset or empty."""
        return self.text("services", "kube-api", "service_cluster_ip_range") or DEFAULT_SERVICE_CLUSTER_IP_RANGE

    @property
    def kubernetes_version(self) -> Optional[str]:
        """kubernetes_version, None when unset (rke then deploys its own default version)."""
        return self.text("kubernetes_version")

    @property
    def kubeproxy_extra_args(self) -> dict:
        """services.kubeproxy.extra_args as rke hands them to kube-proxy: flag name -> text (a null is empty text)."""
        args = self.node("services", "kubeproxy", "extra_args")
        if args is None:
            return {}
        path = "services.kubeproxy.extra_args"
        if not isinstance(args, MappingNode):
            raise self.error("%s: %s is %s, but RKE expects a mapping of flag: value" % (self.source.where(args), path, kind(args)))
        result = {}
        for key, value in args.value:
            if not isinstance(key, ScalarNode) or not isinstance(value, ScalarNode):
                bad = value if isinstance(key, ScalarNode) else key
                raise self.error("%s: %s holds %s, but RKE passes each flag as name: text" % (self.source.where(bad), path, kind(bad)))
            result[key.value] = "" if is_null(value) else value.value
        return result

    @property
    def metrics_bind_address(self) -> Optional[str]:
        """Where kube-proxy serves metrics (and /proxyMode): its default when unset, None when set empty (off)."""
        args = self.kubeproxy_extra_args
        if "metrics-bind-address" not in args:
            return DEFAULT_METRICS_BIND_ADDRESS
        address = args["metrics-bind-address"]
        return with_metrics_port(address) if address else None

    @property
    def state_file(self) -> str:
        return state_file_path(self.name)

    @property
    def kube_config_file(self) -> str:
        return kube_config_path(self.name)
