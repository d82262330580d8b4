# -*- coding: utf-8 -*-
# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the node modules run the node's commands (private to the collection).

kernel_modules, ipvs_node_info, kube_proxy_info and kube_proxy_leftovers all run the node's own tools (kmod,
iptables, ipset, ipvsadm, ip, docker): in one locale, looked up through PATH, and failing with a message
that names the command. Runs on the nodes: Python 3.6 syntax at most.
"""

# Commands run by the modules speak English, so that their output can be read
# (set as module.run_command_environ_update; kube_proxy_info passes it per call).
C_LOCALE = dict(LANG="C", LC_ALL="C", LC_MESSAGES="C")
# The tools (kmod, iptables, ipset, ipvsadm, ip, docker) are found as Ansible finds them: module.get_bin_path with no
# opt_dirs searches PATH, then /sbin, /usr/sbin and /usr/local/sbin, so an administrator's PATH (or a test's fake)
# comes first.


def run(module, args, data=None, what=""):
    """A command's stdout; fail_json naming the command and its error when it fails.

    module is an AnsibleModule, or anything with its run_command and fail_json. `what` names the command in the
    message when its argv would not say it well (a full path, a long list of arguments).
    """
    rc, out, err = module.run_command(args, data=data, binary_data=True)
    if rc != 0:
        module.fail_json(msg="%s failed (rc %d): %s" % (what or " ".join(args), rc, (err or out).strip()), rc=rc, stderr=err, stdout=out)
    return out
