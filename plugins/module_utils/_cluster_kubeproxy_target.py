# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``services.kubeproxy`` should hold after a request: extra_args, extra_binds and the Windows guard.

Private to the collection: plain functions over a Stanza (what the file holds) and a request (what the
options ask), testable without Ansible. Nothing here knows where lines are; ``_cluster_kubeproxy_patch.patch``
hands the result to the YAML editor.
"""

from collections import OrderedDict
from typing import Optional

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_stanza import Stanza
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamledit import DELETE
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import MappingNode

LIB_MODULES = "/lib/modules"
# Go's strconv.ParseBool, which kube-proxy uses for boolean flags.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# YAML 1.1 booleans that Go's ParseBool rejects.
_YAML11_BOOL = {}
for _word, _value in (("y", "true"), ("yes", "true"), ("on", "true"), ("n", "false"), ("no", "false"), ("off", "false")):
    for _variant in (_word, _word.capitalize(), _word.upper()):
        _YAML11_BOOL[_variant] = _value


def same_flag(old: str, new: str) -> bool:
    """Whether kube-proxy reads two flag values alike (Go's ParseBool spellings of one boolean)."""
    if old == new:
        return True
    return (old in _GO_TRUE and new in _GO_TRUE) or (old in _GO_FALSE and new in _GO_FALSE)


def bind_target(bind: str) -> Optional[str]:
    """The container path of a ``host:container[:options]`` bind."""
    parts = str(bind).split(":")
    return parts[1].rstrip("/") or "/" if len(parts) > 1 else None


def target(stanza: Stanza, request: dict, warnings: list) -> tuple:
    """(extra_args, extra_binds, win_extra_args) the file should end up with.

    extra_args is always given; extra_binds is None when unchanged; win_extra_args is None when unchanged, or
    DELETE when the Windows guard's own copy is to go. Problems worth a word are appended to ``warnings``.
    """
    args = target_args(stanza, request, warnings)
    binds = target_binds(stanza, request, warnings)
    return args, binds, target_windows(stanza, request, args, warnings)


def target_args(stanza: Stanza, request: dict, warnings: list) -> OrderedDict:
    """extra_args after the request: flags set and removed, equal booleans left alone, YAML 1.1 words reported or fixed."""
    result = OrderedDict(stanza.values())
    for key in list(result):
        if key in request["remove_args"] or (request["remove_ipvs_flags"] and key.startswith("ipvs-")):
            del result[key]
    for key, value in request["set_args"].items():
        if key in result and same_flag(result[key], value):
            continue
        result[key] = value
    for key, (_key_node, value_node) in stanza.args.items():
        if key not in result or key in request["set_args"]:
            continue
        if not value_node.style and value_node.value in _YAML11_BOOL:
            fixed = _YAML11_BOOL[value_node.value]
            if request["fix_yaml11_booleans"]:
                result[key] = fixed
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
    return result


def target_binds(stanza: Stanza, request: dict, warnings: list) -> Optional[list]:
    """extra_binds after the request, None when unchanged; a second /lib/modules mount is reported or removed."""
    binds = stanza.bind_values()
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
    return new_binds if new_binds != binds else None


def _inherited(args: dict) -> OrderedDict:
    """The flags Windows workers take from extra_args: all but proxy-mode and the ipvs-* ones."""
    return OrderedDict((k, v) for k, v in args.items() if k != "proxy-mode" and not k.startswith("ipvs-"))


def target_windows(stanza: Stanza, request: dict, args: dict, warnings: list):
    """The Windows guard: win_extra_args after the request; None when unchanged, DELETE to remove the guard's copy.

    RKE gives Windows workers extra_args when win_extra_args is empty, and Windows cannot run IPVS: before
    extra_args says ipvs, the flags Windows workers inherited so far are copied with the Windows proxy mode.
    """
    win = stanza.values("win_extra_args")
    new_win = OrderedDict(win)
    windows_mode = request["windows_proxy_mode"]
    if args.get("proxy-mode") == "ipvs" and windows_mode:
        if not win:
            new_win.update(_inherited(args))
            new_win["proxy-mode"] = windows_mode
        elif win.get("proxy-mode") == "ipvs":
            warnings.append(
                "%s: services.kubeproxy.win_extra_args sets proxy-mode ipvs, which Windows workers cannot run"
                % stanza.source.where(stanza.win_args["proxy-mode"][1])
            )
    elif windows_mode and win and win.get("proxy-mode") == windows_mode and args.get("proxy-mode") != "ipvs":
        # Undo exactly what the guard wrote (the inherited flags plus the Windows mode), nothing else.
        if dict((k, v) for k, v in win.items() if k != "proxy-mode") == dict(_inherited(args)):
            return DELETE
    return new_win if new_win != win else None
