# Profile full: the node (containerd, kubelet, kube-proxy), cluster add-ons and test servers.
# shellcheck shell=bash

up_node() { die "profile full is not implemented yet"; }
status_node() { :; }
down_node() { :; }
cmd_sync() { die "sync is not implemented yet"; }
