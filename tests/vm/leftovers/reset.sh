#!/bin/sh
# Bring the node back to an empty netfilter, IPVS and ipset state, in both iptables backends.
for backend in legacy nft; do
  printf '*raw\nCOMMIT\n*mangle\nCOMMIT\n*nat\nCOMMIT\n*filter\nCOMMIT\n' | "iptables-$backend-restore"
done
ipvsadm -C
ipset destroy 2>/dev/null
ip link delete kube-ipvs0 2>/dev/null
true
