# shellcheck shell=bash
# What a failed preflight must leave as it was: installed packages, apt's lists, the modules-load.d
# directory and the loaded modules. Prints one line per item.
set -eu
dpkg-query --show --showformat='pkg ${Package} ${db:Status-Status}\n'
find /etc/modules-load.d /var/lib/apt/lists -maxdepth 1 -printf 'file %p %s %T@\n' | sort
cut -d' ' -f1 /proc/modules | sort | sed 's/^/module /'
