// pulumi-resource-libvirt, matching the Python SDK pulumi-libvirt==0.5.4.
//
// The provider is module github.com/pulumi/pulumi-libvirt/provider (directory provider/ of
// the repository), a terraform-bridge (v3.99.0) wrapper of
// github.com/dmacvicar/terraform-provider-libvirt v0.8.1, which talks to libvirtd through
// the pure-Go github.com/digitalocean/go-libvirt: no cgo, no libvirt headers
// (its Makefile builds with CGO_ENABLED=0).
// Tag v0.5.4 is commit 551204e65927f56394ce673106d009d7e93dd26a (2025-01-02T16:58:34Z);
// the repository has no provider/v0.5.4 tag, so the version below is the pseudo-version
// of that commit. The Go module proxy reachable here refuses this module at every version,
// and github.com/dmacvicar/terraform-provider-libvirt too (403 "This module version is
// not available"), so scripts/build-engine reports it as blocked; it builds as soon as
// GOPROXY points at a proxy that serves both.
// Version ldflag (from the repository's Makefile):
//   -X github.com/pulumi/pulumi-libvirt/provider/pkg/version.Version=0.5.4
module hapx/engine/providers/libvirt

go 1.26.6

require github.com/pulumi/pulumi-libvirt/provider v0.0.0-20250102165834-551204e65927

// Copied exactly from provider/go.mod of github.com/pulumi/pulumi-libvirt at tag v0.5.4:
// replace directives of a dependency are ignored, so the main module must repeat them.
replace (
	github.com/hashicorp/go-getter => github.com/hashicorp/go-getter v1.4.0
	github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20240520223432-0c0bf0d65f10
	github.com/spf13/afero => github.com/spf13/afero v1.2.2
)
