"""kube-proxy's log lines in the wordings of the Kubernetes versions RKE ships, shared by the _kube_proxy_* tests.

Wordings from docs/research/rke-kube-proxy.md B2.
"""

# Lines as kube-proxy prints them (klog header, then the message).
V1_20_IPVS = "I0502 13:19:00.699625       1 server_others.go:259] Using ipvs Proxier.\n"
V1_20_FALLBACK = (
    "E0502 13:19:00.699625       1 server_others.go:304] can't determine whether to use ipvs proxy, error: IPVS proxier will not be "
    "used because the following required kernel modules are not loaded: [ip_vs_rr ip_vs_sh]\n"
    "W0502 13:19:00.699625       1 server_others.go:304] Can't use ipvs proxier, trying iptables proxier\n"
    "I0502 13:19:00.702634       1 server_others.go:140] Using iptables Proxier.\n"
)
V1_24_IPVS = 'I1121 06:50:00.123456       1 server_others.go:274] "Using ipvs Proxier"\n'
V1_24_FALLBACK = (
    'E1121 06:50:00.123456       1 server_others.go:259] "Can\'t use the IPVS proxier" err="IPVS proxier will not be used because '
    'the following required kernel modules are not loaded: [ip_vs]"\n'
    'I1121 06:50:00.123456       1 server_others.go:212] "Using iptables Proxier"\n'
)
V1_28_REFUSED = (
    'E1121 06:50:00.123456       1 server.go:558] "Error running ProxyServer" err="can\'t use the IPVS proxier: IPVS proxier will not be '
    'used because the following required kernel modules are not loaded: [ip_vs_wrr]"\n'
    'E1121 06:50:00.123456       1 run.go:74] "command failed" err="can\'t use the IPVS proxier: IPVS proxier will not be used because '
    'the following required kernel modules are not loaded: [ip_vs_wrr]"\n'
)
IPSET_MISSING = (
    'E1121 06:50:00.123456       1 server_others.go:259] "Can\'t use the IPVS proxier" err="error getting ipset version, error: exec: '
    '\\"ipset\\": executable file not found in $PATH"\n'
    'I1121 06:50:00.123456       1 server_others.go:212] "Using iptables Proxier"\n'
)
# Kubernetes 1.27 and later: the reasons kube-proxy gives instead of a module list.
V1_28_NOT_SUPPORTED = (
    'E1121 06:50:00.123456       1 server.go:556] "Error running ProxyServer" err="can\'t use the IPVS proxier: Ipvs not supported"\n'
    'E1121 06:50:00.123470       1 run.go:74] "command failed" err="can\'t use the IPVS proxier: Ipvs not supported"\n'
)
V1_28_DUMMY_VS = (
    'E1121 06:50:00.123400       1 proxier.go:617] "Could not create dummy VS" err="no such file or directory" scheduler="lc"\n'
    'E1121 06:50:00.123456       1 server.go:556] "Error running ProxyServer" err="can\'t use the IPVS proxier: no such file or directory"\n'
)
