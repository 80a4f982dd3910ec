//go:build tools

// Package tools pins the S3 server built from this module.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
