"""Several hosts on one machine: network namespaces, the gateway (load balancer and relays)
and a cluster of receiver instances behind it."""
