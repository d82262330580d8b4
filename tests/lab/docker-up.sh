#!/usr/bin/env bash
# Start the Docker engine when it is not running, or say exactly what is missing and what to do.
#   bash tests/lab/docker-up.sh LOGFILE
set -euo pipefail
log=${1:?usage: docker-up.sh LOGFILE}

if ! command -v docker >/dev/null 2>&1; then
  echo "docker-up: no docker client on PATH; run 'make setup' (installs Debian's docker.io)" >&2
  exit 1
fi
docker info >/dev/null 2>&1 && exit 0

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: $(command -v docker) is a Docker client, but no Docker daemon (dockerd) is installed and none answers;" \
    "run 'make setup' (installs Debian's docker.io), or start your own engine and point DOCKER_HOST at it" >&2
  exit 1
fi

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
mkdir -p "$(dirname "$log")"
# There may be no init system (containers, this lab's machines): start the daemon directly, in the background.
"${SUDO[@]}" sh -c "nohup dockerd >'$log' 2>&1 &"
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
{
  echo "docker-up: dockerd ($(command -v dockerd)) did not answer within 60 s. Its last lines ($log):"
  tail -n 15 "$log" | sed 's/^/  /'
  echo "docker-up: fix what the log names (storage driver, cgroups, iptables), or start your own engine and point DOCKER_HOST at it"
} >&2
exit 1
