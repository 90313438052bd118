//go:build tools

// Package tools pins the pulumi-command provider that scripts/build-engine builds.
package tools

import (
	_ "github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command"
)
