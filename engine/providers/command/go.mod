// pulumi-resource-command, matching the Python SDK pulumi-command==1.2.1.
//
// The provider is module github.com/pulumi/pulumi-command/provider (directory provider/ of
// the repository). Tag v1.2.1 is commit 7f3eb6f3b77cd0fa3895ba437a695dd393f7dd25
// (2026-03-03T23:59:22Z, from the proxy's .info for github.com/pulumi/pulumi-command@v1.2.1);
// the repository has no provider/v1.2.1 tag, so the version below is the pseudo-version of
// that commit. The Go module proxy reachable here refuses this module at every version
// (403 "This module version is not available"), so scripts/build-engine reports it as
// blocked; it builds as soon as GOPROXY points at a proxy that serves it.
// Version ldflag (from the repository's Makefile):
//   -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=1.2.1
module hapx/engine/providers/command

go 1.26.6

require github.com/pulumi/pulumi-command/provider v0.0.0-20260303235922-7f3eb6f3b77c
