//go:build tools

// Package tools pins the pulumi-libvirt provider that scripts/build-engine builds.
package tools

import (
	_ "github.com/pulumi/pulumi-libvirt/provider/cmd/pulumi-resource-libvirt"
)
