// etcd server, built from its Go module in the same `go build` as Kubernetes
// (Debian's etcd-server 3.4 is older than the 3.5+ that kube-apiserver 1.34 supports).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
