# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edit of ``services.kubeproxy`` in an RKE cluster.yml: ``patch()``, the entry point of cluster_kubeproxy.

Private to the collection: plain functions, testable without Ansible. The module
``rkeops.ipvs.cluster_kubeproxy`` is argument handling and file I/O around ``patch()``.

RKE reads cluster.yml with go-yaml v2 (YAML 1.1, not strict) into ``map[string]string`` for
``extra_args``; every value becomes one ``--key=value`` flag of kube-proxy. The work is shared out:
  _cluster_kubeproxy_request  options -> request (flags to set and remove)
  _cluster_yml                the file read and composed once
  _cluster_kubeproxy_stanza   services.kubeproxy as it is, refused when RKE would read it differently
  _cluster_kubeproxy_target   what services.kubeproxy should hold
  _yamledit                   the line splices that get it there
"""

from collections import OrderedDict
from typing import Optional

from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_request import SCHEDULERS, RequestError, build_request
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_stanza import Stanza
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_kubeproxy_target import target
from ansible_collections.rkeops.ipvs.plugins.module_utils._cluster_yml import ClusterYml
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamledit import DELETE, Editor
from ansible_collections.rkeops.ipvs.plugins.module_utils._yamltext import YamlEditError, gc_paused

# build_request, RequestError and SCHEDULERS are re-exported: the module, the tests and bench/ import them from here.
__all__ = ["SCHEDULERS", "RequestError", "build_request", "patch"]

STANZA = ("services", "kubeproxy")


def patch(text: str, name: str, request: dict) -> dict:
    """Plan and apply the change. Returns a dict; raises YamlEditError on bad input.

    Keys: changed, text (new file text), before/after (the kubeproxy stanza only),
    proxy_mode_before/after, extra_args, extra_binds, win_extra_args, warnings.
    """
    with gc_paused():
        return _patch(text, name, request)


def changes(stanza: Stanza, args: dict, binds: Optional[list], win) -> OrderedDict:
    """The children of services.kubeproxy to rewrite (name -> new value or DELETE), in the order they are written."""
    result = OrderedDict()
    if dict(args) != dict(stanza.values()):
        result["extra_args"] = args
    if binds is not None:
        result["extra_binds"] = binds
    if win is not None:
        result["win_extra_args"] = win
    return result


def _patch(text: str, name: str, request: dict) -> dict:
    cluster = ClusterYml(text, name)
    stanza = Stanza(cluster)
    warnings = []
    args, binds, win = target(stanza, request, warnings)
    editor = Editor(cluster.source, cluster.root)
    wanted = changes(stanza, args, binds, win)
    if wanted:
        editor.update(STANZA, wanted)
    before = stanza.stanza_text()
    result = {
        "changed": bool(editor),
        "text": text,
        "before": before,
        "after": before,
        "proxy_mode_before": stanza.values().get("proxy-mode"),
        "proxy_mode_after": args.get("proxy-mode"),
        "extra_args": dict(args),
        "extra_binds": binds if binds is not None else stanza.bind_values(),
        "win_extra_args": {} if win is DELETE else dict(win if win is not None else stanza.values("win_extra_args")),
        "warnings": warnings,
    }
    if not editor:
        return result
    new_text = editor.apply()
    # Read the result back the way the next run will: it must parse and hold exactly the target.
    try:
        check = Stanza(ClusterYml(new_text, name))
    except YamlEditError as exc:  # pragma: no cover - a bug, never the user's input
        raise YamlEditError("internal error, %s left unchanged: the edited text would not parse (%s)" % (name, exc)) from None
    if dict(check.values()) != dict(args) or check.bind_values() != result["extra_binds"] or dict(check.values("win_extra_args")) != result["win_extra_args"]:
        raise YamlEditError("internal error, %s left unchanged: the edit did not read back as planned; please report it" % name)
    result["text"] = new_text
    result["after"] = check.stanza_text()
    return result
