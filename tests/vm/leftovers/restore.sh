#!/bin/sh
# restore.sh BACKEND DUMP: create the ipsets the dump's rules match (kube-proxy's own types for its sets, pkg/proxy/ipvs/ipset.go;
# a hash type of the matched dimensions for the others), then restore the dump into that backend.
set -eu
backend=$1 dump=$2
grep -o -- '--match-set [^ ]* [^ ]*' "$dump" | sort -u | while read -r _flag name dims; do
  case "$name" in
    KUBE-NODE-PORT-TCP|KUBE-NODE-PORT-UDP|KUBE-NODE-PORT-LOCAL-TCP|KUBE-NODE-PORT-LOCAL-UDP) type="bitmap:port range 0-65535" ;;
    *) case "$dims" in
         *,*,*) type="hash:ip,port,ip" ;;
         *,*) type="hash:ip,port" ;;
         *) type="hash:net" ;;
       esac ;;
  esac
  ipset create -exist "$name" $type
done
"iptables-$backend-restore" < "$dump"
