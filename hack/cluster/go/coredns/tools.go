//go:build tools

// Package tools pins the CoreDNS command built from this module.
package tools

import _ "github.com/coredns/coredns"
