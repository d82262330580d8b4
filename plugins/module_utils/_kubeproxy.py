# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``services.kubeproxy`` of an RKE cluster.yml should hold, and the edit that gets it there.

Private to the collection: plain functions, testable without Ansible. The module
``rkeops.ipvs.cluster_kubeproxy`` is argument handling and file I/O around ``patch()``.

RKE reads cluster.yml with go-yaml v2 (YAML 1.1, not strict) into ``map[string]string`` for
``extra_args``; every value becomes one ``--key=value`` flag of kube-proxy.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict

from ansible_collections.rkeops.ipvs.plugins.module_utils._yamledit import (
    Edits,
    Layout,
    MappingNode,
    ScalarNode,
    SequenceNode,
    Source,
    YamlEditError,
    check_keys,
    compose,
    dash_column,
    first_child_column,
    gc_paused,
    is_block,
    is_empty,
    is_null,
    kind,
    last_line,
    render_key,
    render_scalar,
)

# Schedulers of the Linux IPVS implementation; each is the kernel module ip_vs_<name>.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
PROXY_MODES = ("ipvs", "iptables")
DURATION_OPTIONS = (
    ("ipvs_tcp_timeout", "ipvs-tcp-timeout"),
    ("ipvs_tcpfin_timeout", "ipvs-tcpfin-timeout"),
    ("ipvs_udp_timeout", "ipvs-udp-timeout"),
    ("ipvs_sync_period", "ipvs-sync-period"),
    ("ipvs_min_sync_period", "ipvs-min-sync-period"),
)
IPVS_OPTIONS = ("ipvs_scheduler", "ipvs_strict_arp", "ipvs_exclude_cidrs") + tuple(o for o, f in DURATION_OPTIONS)
LIB_MODULES = "/lib/modules"
# Spellings that RKE silently ignores: it reads only services.kubeproxy.
_MISSPELT = re.compile(r"^kube[-_ ]?proxy$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^(\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1e3, "\u00b5s": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
# Go's strconv.ParseBool, which kube-proxy uses for boolean flags.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# YAML 1.1 booleans that Go's ParseBool rejects.
_YAML11_BOOL = {}
for _word, _value in (("y", "true"), ("yes", "true"), ("on", "true"), ("n", "false"), ("no", "false"), ("off", "false")):
    for _variant in (_word, _word.capitalize(), _word.upper()):
        _YAML11_BOOL[_variant] = _value


DELETE = object()  # a kubeproxy child key to remove altogether


class RequestError(ValueError):
    """An option value that cannot work; the message names the option."""


def parse_duration(option, value):
    """Validate a Go duration (``900s``, ``1h30m``); a bare number means seconds. Returns (text, ns)."""
    text = str(value).strip()
    if re.match(r"^\d+$", text):
        text += "s"
    if text.startswith("-"):
        raise RequestError("%s=%s: must not be negative (a Go duration such as 900s or 15m)" % (option, value))
    rest, total = text, 0.0
    if text == "0":
        return text, 0.0
    while rest:
        match = _DURATION_RE.match(rest)
        if not match:
            raise RequestError("%s=%s: not a Go duration; write e.g. 900s, 15m or 1h30m" % (option, value))
        total += float(match.group(1)) * _UNIT_NS[match.group(3)]
        rest = rest[match.end() :]
    return text, total


def flag_text(value):
    """How a value reaches kube-proxy: booleans as true/false, everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_request(params):
    """Turn module parameters into the set of flags to set and remove. Raises RequestError."""
    state = params.get("state") or "present"
    mode = params.get("proxy_mode") or "ipvs"
    set_args = OrderedDict()
    remove = set()
    given_ipvs = [name for name in IPVS_OPTIONS if params.get(name) not in (None, [])]
    if state == "present" and mode != "ipvs" and given_ipvs:
        raise RequestError("%s only apply to proxy_mode=ipvs (proxy_mode is %s)" % (", ".join(given_ipvs), mode))

    if params.get("ipvs_scheduler") is not None and params["ipvs_scheduler"] not in SCHEDULERS:
        raise RequestError("ipvs_scheduler=%s: unknown; use one of %s" % (params["ipvs_scheduler"], ", ".join(SCHEDULERS)))
    cidrs = params.get("ipvs_exclude_cidrs") or []
    for cidr in cidrs:
        try:
            if "/" not in str(cidr):
                raise ValueError("no prefix length")
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            raise RequestError("ipvs_exclude_cidrs: %r is not a CIDR; write e.g. 10.0.0.0/8 or fd00::/8" % (cidr,)) from None
    durations = {}
    for option, _flag in DURATION_OPTIONS:
        if params.get(option) is not None:
            durations[option] = parse_duration(option, params[option])
    if "ipvs_sync_period" in durations and durations["ipvs_sync_period"][1] <= 0:
        raise RequestError("ipvs_sync_period must be greater than 0")
    if "ipvs_sync_period" in durations and "ipvs_min_sync_period" in durations:
        if durations["ipvs_min_sync_period"][1] > durations["ipvs_sync_period"][1]:
            raise RequestError("ipvs_min_sync_period must not be longer than ipvs_sync_period")

    extra = params.get("extra_args") or {}
    for key in extra:
        if not isinstance(key, str) or not key.strip() or key.startswith("-") or "=" in key:
            raise RequestError("extra_args: %r is not a kube-proxy flag name; write it without dashes, e.g. masquerade-all" % (key,))
        if isinstance(extra[key], (dict, list)):
            raise RequestError("extra_args.%s: RKE passes flags as text; give a string, number or boolean" % key)

    if state == "present":
        set_args["proxy-mode"] = mode
        if params.get("ipvs_scheduler") is not None:
            set_args["ipvs-scheduler"] = params["ipvs_scheduler"]
        if params.get("ipvs_strict_arp") is not None:
            set_args["ipvs-strict-arp"] = flag_text(params["ipvs_strict_arp"])
        if cidrs:
            set_args["ipvs-exclude-cidrs"] = ",".join(str(c) for c in cidrs)
        for option, flag in DURATION_OPTIONS:
            if option in durations:
                set_args[flag] = durations[option][0]
        if params.get("masquerade_all") is not None:
            set_args["masquerade-all"] = flag_text(params["masquerade_all"])
        for key, value in extra.items():
            if value is None:
                set_args.pop(key, None)
                remove.add(key)
            else:
                set_args[key] = flag_text(value)
                remove.discard(key)
    else:
        remove.add("proxy-mode")
        if params.get("masquerade_all") is not None:
            remove.add("masquerade-all")
        remove.update(extra)

    binds = [str(b) for b in (params.get("extra_binds") or [])]
    windows = params.get("windows_proxy_mode", "kernelspace")
    return {
        "state": state,
        "proxy_mode": mode if state == "present" else None,
        "set_args": set_args,
        "remove_args": remove,
        # With proxy_mode iptables or state absent the ipvs-* flags mean nothing: drop them.
        "remove_ipvs_flags": state == "absent" or mode != "ipvs",
        "add_binds": binds if state == "present" else [],
        "remove_binds": binds if state == "absent" else [],
        "remove_lib_modules_binds": bool(params.get("remove_lib_modules_binds")),
        "fix_yaml11_booleans": bool(params.get("fix_yaml11_booleans")),
        "windows_proxy_mode": windows if windows not in ("", None) else None,
    }


def _same_flag(old, new):
    if old == new:
        return True
    return (old in _GO_TRUE and new in _GO_TRUE) or (old in _GO_FALSE and new in _GO_FALSE)


def bind_target(bind):
    parts = str(bind).split(":")
    return parts[1].rstrip("/") or "/" if len(parts) > 1 else None


# --------------------------------------------------------------------------- reading


class Stanza:
    """Where things are in the file: services, kubeproxy and its children."""

    def __init__(self, source):
        self.source = source
        root = compose(source)
        if root is None:
            raise YamlEditError("%s: the file is empty; it should be an RKE cluster.yml (a mapping with nodes: and services:)" % source.name)
        if not isinstance(root, MappingNode):
            raise YamlEditError("%s: the document is %s, but an RKE cluster.yml is a mapping (nodes:, services:, ...)" % (source.where(root), kind(root)))
        check_keys(source, root)
        self.root = root
        self.layout = Layout(source, root)
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
            first, last = self.kp_key.start_mark.line, last_line(source, self.kp, self.kp_key)
            for key, value in self.kp.value:
                if key.value in self.children:
                    self._duplicate("services.kubeproxy.", key.value, [self.children[key.value][0], key])
                self.children[key.value] = (key, value)
                self._check_alias(key, value, first, last)
        self.args = self._string_map("extra_args")
        self.win_args = self._string_map("win_extra_args")
        self.args_array = self._child("extra_args_array")
        self.binds = self._string_list("extra_binds")

    def _single(self, mapping, name, prefix):
        found = [(k, v) for k, v in mapping.value if k.value == name]
        if len(found) > 1:
            self._duplicate(prefix, name, [k for k, v in found])
        return found[0] if found else (None, None)

    def _duplicate(self, prefix, name, keys):
        lines = ", ".join(str(k.start_mark.line + 1) for k in keys)
        raise YamlEditError(
            "%s: %s%s appears %d times (lines %s); which one RKE uses is ambiguous. Merge them into one and run again"
            % (self.source.name, prefix, name, len(keys), lines)
        )

    def _check_alias(self, key, value, first, last):
        # An alias node carries the marks of its anchor: if they lie outside lines first..last of the stanza,
        # the text cannot be edited in place.
        for node in (key, value):
            if not (first <= node.start_mark.line <= last) or (isinstance(node, ScalarNode) and node.value == "<<"):
                raise YamlEditError(
                    "%s: services.kubeproxy.%s uses a YAML alias or merge key; edit it by hand or write it out in full" % (self.source.where(key), key.value)
                )

    def _child(self, name):
        key, value = self.children.get(name, (None, None))
        return value

    def _string_map(self, name):
        key, value = self.children.get(name, (None, None))
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

    def _string_list(self, name):
        key, value = self.children.get(name, (None, None))
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

    def stanza_text(self):
        if self.kp_key is None:
            return ""
        first, last = self.kp_key.start_mark.line, last_line(self.source, self.kp, self.kp_key)
        return "".join(self.source.lines[i] + "\n" for i in range(first, last + 1))

    def values(self, name="extra_args"):
        nodes = self.args if name == "extra_args" else self.win_args
        return OrderedDict((k, v.value) for k, (kn, v) in nodes.items())


# --------------------------------------------------------------------------- planning


def _target(stanza, request, warnings):
    """The extra_args, extra_binds and win_extra_args that the file should end up with."""
    args = stanza.values()
    target = OrderedDict(args)
    for key in list(target):
        if key in request["remove_args"] or (request["remove_ipvs_flags"] and key.startswith("ipvs-")):
            del target[key]
    for key, value in request["set_args"].items():
        if key in target and _same_flag(target[key], value):
            continue
        target[key] = value
    for key, (_key_node, value_node) in stanza.args.items():
        if key not in target or key in request["set_args"]:
            continue
        if not value_node.style and value_node.value in _YAML11_BOOL:
            fixed = _YAML11_BOOL[value_node.value]
            if request["fix_yaml11_booleans"]:
                target[key] = fixed
            else:
                warnings.append(
                    "%s: services.kubeproxy.extra_args.%s is %s: RKE hands that text to kube-proxy, which rejects it;"
                    " write %s (or set fix_yaml11_booleans=true)" % (stanza.source.where(value_node), key, value_node.value, fixed)
                )

    if stanza.args_array is not None and isinstance(stanza.args_array, MappingNode):
        clash = [k.value for k, v in stanza.args_array.value if k.value in request["set_args"]]
        if clash:
            warnings.append(
                "%s: services.kubeproxy.extra_args_array also sets %s; RKE passes both, check which one kube-proxy keeps"
                % (stanza.source.where(stanza.args_array), ", ".join(clash))
            )

    binds = [b.value for b in stanza.binds]
    new_binds = []
    for item in stanza.binds:
        if item.value in request["remove_binds"]:
            continue
        if bind_target(item.value) == LIB_MODULES:
            if request["remove_lib_modules_binds"]:
                continue
            warnings.append(
                "%s: services.kubeproxy.extra_binds mounts %s at %s; RKE >= 1.1 mounts /lib/modules into kube-proxy itself,"
                " and a second mount there makes 'rke up' fail with a duplicate mount point. Remove it, or set"
                " remove_lib_modules_binds=true" % (stanza.source.where(item), item.value.split(":")[0], LIB_MODULES)
            )
        new_binds.append(item.value)
    for bind in request["add_binds"]:
        if bind not in new_binds:
            new_binds.append(bind)
            if bind_target(bind) == LIB_MODULES:
                warnings.append(
                    "extra_binds: %s mounts at %s, which RKE >= 1.1 already mounts; 'rke up' fails with a duplicate"
                    " mount point on those versions" % (bind, LIB_MODULES)
                )

    win = stanza.values("win_extra_args")
    new_win = OrderedDict(win)
    windows_mode = request["windows_proxy_mode"]
    if target.get("proxy-mode") == "ipvs" and windows_mode:
        if not win:
            # RKE gives Windows workers extra_args when win_extra_args is empty; they cannot run IPVS.
            for key, value in target.items():
                if key != "proxy-mode" and not key.startswith("ipvs-"):
                    new_win[key] = value
            new_win["proxy-mode"] = windows_mode
        elif win.get("proxy-mode") == "ipvs":
            warnings.append(
                "%s: services.kubeproxy.win_extra_args sets proxy-mode ipvs, which Windows workers cannot run"
                % stanza.source.where(stanza.win_args["proxy-mode"][1])
            )
    elif windows_mode and win and win.get("proxy-mode") == windows_mode and target.get("proxy-mode") != "ipvs":
        # Undo exactly what the guard wrote (the inherited flags plus the Windows mode), nothing else.
        inherited = dict((k, v) for k, v in target.items() if k != "proxy-mode" and not k.startswith("ipvs-"))
        if dict((k, v) for k, v in win.items() if k != "proxy-mode") == inherited:
            return target, (new_binds if new_binds != binds else None), DELETE
    return target, (new_binds if new_binds != binds else None), (new_win if new_win != win else None)


def _entry(col, key, value):
    return "%s%s: %s" % (" " * col, render_key(key), render_scalar(value))


def _item(col, value):
    return "%s- %s" % (" " * col, render_scalar(value, allow_bool_int=False))


def _block_lines(col, step, seq_offset, name, value):
    """Lines of ``name:`` and its block value (mapping or list) at column ``col``."""
    if not value:
        return ["%s%s: %s" % (" " * col, name, "{}" if isinstance(value, dict) else "[]")]
    lines = ["%s%s:" % (" " * col, name)]
    if isinstance(value, dict):
        lines.extend(_entry(col + step, k, v) for k, v in value.items())
    else:
        lines.extend(_item(col + seq_offset, v) for v in value)
    return lines


class Planner:
    def __init__(self, stanza):
        self.stanza = stanza
        self.source = stanza.source
        self.edits = Edits(stanza.source)
        self.layout = stanza.layout

    def _clear_value(self, key, value):
        """Make ``key: <null or {} or []>`` a bare ``key:`` so that a block can follow."""
        if is_empty(value):
            return
        if value.start_mark.line != value.end_mark.line:
            raise YamlEditError("%s: %s spans several lines in flow style; rewrite it in block style and run again" % (self.source.where(value), key.value))
        line = self.source.line(key.start_mark.line)
        start = value.start_mark.column
        end = value.end_mark.column
        while start > 0 and line[start - 1] in " \t":
            start -= 1
        self.edits.replace(key.start_mark.line, start, end, "")

    def _after_colon(self, key):
        line = self.source.line(key.start_mark.line)
        return line.find(":", key.end_mark.column) + 1

    def _rewrite_flow(self, key, value, new_value, col, step):
        """Replace a one-line flow collection (or a null) by the block form of ``new_value``."""
        self._clear_value(key, value)
        if not new_value:
            empty = " {}" if isinstance(new_value, dict) else " []"
            self.edits.replace(key.start_mark.line, self._after_colon(key), self._after_colon(key), empty)
            return
        block = _block_lines(col, step, self.layout.seq_offset, key.value, new_value)[1:]
        self.edits.insert_after(key.start_mark.line, block)

    def map_edit(self, key, value, current, target, col, step):
        """Edit the flag map under ``key`` (existing key) from ``current`` to ``target``."""
        if not is_block(value):
            self._rewrite_flow(key, value, target, col, step)
            return
        child_col = first_child_column(self.source, value)
        kept = 0
        for name, (name_node, value_node) in current.items():
            if name not in target:
                if self.source.line(name_node.start_mark.line)[: name_node.start_mark.column].strip():
                    raise YamlEditError("%s: cannot remove %s, which shares its line with other content" % (self.source.where(name_node), name))
                self.edits.delete(name_node.start_mark.line, last_line(self.source, value_node, name_node))
                continue
            kept += 1
            if target[name] == value_node.value:
                continue
            if value_node.start_mark.line != value_node.end_mark.line or is_empty(value_node):
                first = name_node.start_mark.line
                self.edits.delete(first, last_line(self.source, value_node, name_node))
                self.edits.insert_after(first, [_entry(name_node.start_mark.column, name, target[name])])
                continue
            style = value_node.style if value_node.style in ("'", '"') else None
            self.edits.replace(value_node.start_mark.line, value_node.start_mark.column, value_node.end_mark.column, render_scalar(target[name], style))
        added = [(k, v) for k, v in target.items() if k not in current]
        if added:
            self.edits.insert_after(last_line(self.source, value, key), [_entry(child_col, k, v) for k, v in added])
        elif not kept:
            self.edits.replace(key.start_mark.line, self._after_colon(key), self._after_colon(key), " {}")

    def list_edit(self, key, value, target, col):
        if not is_block(value):
            self._rewrite_flow(key, value, target, col, self.layout.step)
            return
        items = list(value.value)
        dash = dash_column(self.source, items[0])
        present = [i.value for i in items]
        kept = 0
        for item in items:
            if item.value in target:
                kept += 1
                continue
            start = item.start_mark.line
            if self.source.line(start)[:dash].strip():
                raise YamlEditError("%s: cannot remove the bind, which shares its line with other content" % self.source.where(item))
            self.edits.delete(start, last_line(self.source, item))
        added = [b for b in target if b not in present]
        if added:
            self.edits.insert_after(last_line(self.source, value, key), [_item(dash, b) for b in added])
        elif not kept:
            self.edits.replace(key.start_mark.line, self._after_colon(key), self._after_colon(key), " []")

    def plan(self, target, binds, win):
        stanza, layout, source = self.stanza, self.layout, self.source
        changes = OrderedDict()
        if dict(target) != dict(stanza.values()):
            changes["extra_args"] = target
        if binds is not None:
            changes["extra_binds"] = binds
        if win is not None:
            changes["win_extra_args"] = win
        if not changes:
            return

        if stanza.kp_key is None:
            self._add_kubeproxy(changes)
            return
        kp_col = stanza.kp_key.start_mark.column
        if not is_block(stanza.kp):
            step = layout.child_step(stanza.services)
            self._clear_value(stanza.kp_key, stanza.kp)
            lines = []
            for name, value in changes.items():
                lines.extend(_block_lines(kp_col + step, step, layout.seq_offset, name, value))
            self.edits.insert_after(stanza.kp_key.start_mark.line, lines)
            return
        child_col = first_child_column(source, stanza.kp)
        step = layout.child_step(stanza.kp, stanza.services)
        new_keys = []
        for name, value in changes.items():
            key, node = stanza.children.get(name, (None, None))
            if value is DELETE:
                if key is not None:
                    self.edits.delete(key.start_mark.line, last_line(source, node, key))
            elif key is None:
                new_keys.extend(_block_lines(child_col, step, layout.seq_offset, name, value))
            elif name == "extra_binds":
                self.list_edit(key, node, value, child_col)
            else:
                current = stanza.args if name == "extra_args" else stanza.win_args
                self.map_edit(key, node, current, value, child_col, step)
        if new_keys:
            self.edits.insert_after(last_line(source, stanza.kp, stanza.kp_key), new_keys)

    def _add_kubeproxy(self, changes):
        stanza, layout, source = self.stanza, self.layout, self.source
        services = stanza.services
        if services is not None and is_block(services):
            col = first_child_column(source, services)
            step = layout.child_step(services)
            anchor = last_line(source, services, stanza.services_key)
        else:
            step = layout.step
            col = (stanza.services_key.start_mark.column if stanza.services_key is not None else 0) + step
        lines = ["%skubeproxy:" % (" " * col)]
        for name, value in changes.items():
            lines.extend(_block_lines(col + step, step, layout.seq_offset, name, value))
        if services is not None and is_block(services):
            self.edits.insert_after(anchor, lines)
        elif stanza.services_key is not None:
            if isinstance(services, MappingNode) and services.value:
                raise YamlEditError("%s: services is written in flow style ({...}); rewrite it in block style and run again" % source.where(services))
            self._clear_value(stanza.services_key, services)
            self.edits.insert_after(stanza.services_key.start_mark.line, lines)
        else:
            lines = ["services:"] + lines
            anchor = last_line(source, stanza.root)
            self.edits.insert_after(anchor, lines)


# --------------------------------------------------------------------------- entry point


def patch(text, name, request):
    """Plan and apply the change. Returns a dict; raises YamlEditError on bad input.

    Keys: changed, text (new file text), before/after (the kubeproxy stanza only),
    proxy_mode_before/after, extra_args, extra_binds, win_extra_args, warnings.
    """
    with gc_paused():
        return _patch(text, name, request)


def _patch(text, name, request):
    source = Source(text, name)
    stanza = Stanza(source)
    warnings = []
    target, binds, win = _target(stanza, request, warnings)
    planner = Planner(stanza)
    planner.plan(target, binds, win)
    before_args = stanza.values()
    before = stanza.stanza_text()
    result = {
        "changed": bool(planner.edits),
        "text": text,
        "before": before,
        "after": before,
        "proxy_mode_before": before_args.get("proxy-mode"),
        "proxy_mode_after": target.get("proxy-mode"),
        "extra_args": dict(target),
        "extra_binds": binds if binds is not None else [b.value for b in stanza.binds],
        "win_extra_args": {} if win is DELETE else dict(win if win is not None else stanza.values("win_extra_args")),
        "warnings": warnings,
    }
    if not planner.edits:
        return result
    new_text = planner.edits.apply()
    # Read the result back the way the next run will: it must parse and hold exactly the target.
    try:
        check = Stanza(Source(new_text, name))
    except YamlEditError as exc:  # pragma: no cover - a bug, never the user's input
        raise YamlEditError("internal error, %s left unchanged: the edited text would not parse (%s)" % (name, exc)) from None
    got_binds = [b.value for b in check.binds]
    if dict(check.values()) != dict(target) or got_binds != result["extra_binds"] or dict(check.values("win_extra_args")) != result["win_extra_args"]:
        raise YamlEditError("internal error, %s left unchanged: the edit did not read back as planned; please report it" % name)
    result["text"] = new_text
    result["after"] = check.stanza_text()
    return result
