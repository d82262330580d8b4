# Copyright (c) rkeops.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for get-pip.py, which ansible-test downloads to bootstrap pip in its virtual environments.

The lab cannot reach the host that serves get-pip.py, so `make sanity` copies this file to the path where
ansible-test caches that script. It does what get-pip.py does, with the standard library's ensurepip and
the PyPI mirror that pip already uses: install pip (and the packages asked for) into this interpreter.
get-pip.py's own options (--no-setuptools, --no-wheel) are honoured by leaving those packages out.

ansible-test runs it with every Python it bootstraps a virtual environment for, 3.6 included (`make
sanity-oldest`, ansible-core 2.16): so no syntax newer than Python 3.6 here (no `from __future__ import
annotations`, no unpacking in a list display).
"""

import subprocess
import sys

OWN_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    # In a child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in the process that calls it,
    # which would hide the machine's pip configuration (mirror, certificates) from the install below.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    args = [arg for arg in sys.argv[1:] if arg not in OWN_OPTIONS]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))


if __name__ == "__main__":
    main()
