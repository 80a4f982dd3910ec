// Wrapper module: the vCenter stand-in for the vddk importer tests, on govmomi's simulator from the Go module proxy.
module cdi-dev/vcsim

go 1.25.0

require github.com/vmware/govmomi v0.52.0

require github.com/google/uuid v1.6.0 // indirect
