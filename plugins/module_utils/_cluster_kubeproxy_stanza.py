# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading ``services.kubeproxy`` of an RKE cluster.yml: where it is, what it holds, and what RKE would misread.

Private to the collection, testable without Ansible. Built on ``_cluster_yml`` (the file composed once);
refuses, naming file, line and key, everything an in-place edit could get wrong: duplicate keys (which one
RKE uses is ambiguous), misspelt stanzas RKE ignores, aliases and merge keys, values of the wrong kind.
"""

import re
from collections import OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import (
    MappingNode,
    ScalarNode,
    SequenceNode,
    YamlEditError,
    is_null,
    kind,
    span,
)

# Spellings that RKE silently ignores: it reads only services.kubeproxy.
_MISSPELT = re.compile(r"^kube[-_ ]?proxy$", re.IGNORECASE)


class Stanza:
    """Where things are in the file: services, kubeproxy and its children."""

    def __init__(self, cluster: ClusterYml):
        self.cluster = cluster
        self.source = source = cluster.source
        root = cluster.root
        self.services_key, self.services = self._single(root, "services", "")
        if self.services is not None and not (isinstance(self.services, MappingNode) or is_null(self.services)):
            raise YamlEditError("%s: services is %s, but RKE expects a mapping of services" % (source.where(self.services), kind(self.services)))
        self.kp_key, self.kp = None, None
        if isinstance(self.services, MappingNode):
            for key, _value in self.services.value:
                if key.value != "kubeproxy" and _MISSPELT.match(key.value):
                    raise YamlEditError(
                        "%s: services.%s is ignored by RKE, which only reads services.kubeproxy;"
                        " rename it to kubeproxy (or remove it) and run again" % (source.where(key), key.value)
                    )
            self.kp_key, self.kp = self._single(self.services, "kubeproxy", "services.")
        if self.kp is not None and not (isinstance(self.kp, MappingNode) or is_null(self.kp)):
            raise YamlEditError(
                "%s: services.kubeproxy is %s, but RKE expects a mapping (extra_args:, extra_binds:, ...)" % (source.where(self.kp), kind(self.kp))
            )
        self.children = OrderedDict()
        if isinstance(self.kp, MappingNode):
            first, last = span(source, self.kp_key, self.kp)
            for key, value in self.kp.value:
                if key.value in self.children:
                    self._duplicate("services.kubeproxy.", key.value, [self.children[key.value][0], key])
                self.children[key.value] = (key, value)
                self._check_alias(key, value, first, last)
        self.args = self._string_map("extra_args")
        self.win_args = self._string_map("win_extra_args")
        self.args_array = self._child("extra_args_array")
        self.binds = self._string_list("extra_binds")

    def _single(self, mapping, name: str, prefix: str) -> tuple:
        found = [(k, v) for k, v in mapping.value if k.value == name]
        if len(found) > 1:
            self._duplicate(prefix, name, [k for k, v in found])
        return found[0] if found else (None, None)

    def _duplicate(self, prefix: str, name: str, keys: list):
        lines = ", ".join(str(k.start_mark.line + 1) for k in keys)
        raise YamlEditError(
            "%s: %s%s appears %d times (lines %s); which one RKE uses is ambiguous. Merge them into one and run again"
            % (self.source.name, prefix, name, len(keys), lines)
        )

    def _check_alias(self, key, value, first: int, last: int) -> None:
        # An alias node carries the marks of its anchor: if they lie outside lines first..last of the stanza,
        # the text cannot be edited in place.
        for node in (key, value):
            if not (first <= node.start_mark.line <= last) or (isinstance(node, ScalarNode) and node.value == "<<"):
                raise YamlEditError(
                    "%s: services.kubeproxy.%s uses a YAML alias or merge key; edit it by hand or write it out in full" % (self.source.where(key), key.value)
                )

    def _child(self, name: str):
        key, value = self.children.get(name, (None, None))
        return value

    def _string_map(self, name: str) -> OrderedDict:
        value = self._child(name)
        result = OrderedDict()
        if value is None or is_null(value):
            return result
        if not isinstance(value, MappingNode):
            raise YamlEditError("%s: services.kubeproxy.%s is %s, but RKE expects a mapping of flag: value" % (self.source.where(value), name, kind(value)))
        for child_key, child_value in value.value:
            path = "services.kubeproxy.%s.%s" % (name, child_key.value)
            if child_key.value in result:
                self._duplicate("services.kubeproxy.%s." % name, child_key.value, [result[child_key.value][0], child_key])
            if not isinstance(child_value, ScalarNode):
                raise YamlEditError(
                    "%s: %s is %s, but RKE passes each flag as text: write a single value" % (self.source.where(child_value), path, kind(child_value))
                )
            if child_key.value == "<<":
                raise YamlEditError("%s: %s uses a YAML merge key; write the flags out in full" % (self.source.where(child_key), path))
            result[child_key.value] = (child_key, child_value)
        return result

    def _string_list(self, name: str) -> list:
        value = self._child(name)
        if value is None or is_null(value):
            return []
        if not isinstance(value, SequenceNode):
            raise YamlEditError(
                "%s: services.kubeproxy.%s is %s, but RKE expects a list of host:container binds" % (self.source.where(value), name, kind(value))
            )
        for item in value.value:
            if not isinstance(item, ScalarNode):
                raise YamlEditError(
                    "%s: services.kubeproxy.%s holds %s, but each bind is one host:container[:options] text" % (self.source.where(item), name, kind(item))
                )
        return list(value.value)

    def stanza_text(self) -> str:
        """The lines of the services.kubeproxy stanza (for the diff), empty when there is none."""
        if self.kp_key is None:
            return ""
        return self.source.text_of(*span(self.source, self.kp_key, self.kp))

    def values(self, name: str = "extra_args") -> OrderedDict:
        """extra_args (or win_extra_args) as flag name -> text."""
        nodes = self.args if name == "extra_args" else self.win_args
        return OrderedDict((k, v.value) for k, (kn, v) in nodes.items())

    def bind_values(self) -> list:
        return [b.value for b in self.binds]
