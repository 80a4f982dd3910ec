//go:build tools

// Package tools pins the GCS emulator built from this module.
package tools

import _ "github.com/fsouza/fake-gcs-server"
