//go:build tools

// Package tools pins the Pulumi engine programs that scripts/build-engine builds.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
