"""VALIDATE tier: the real Debian tools (haproxy, cloud-init, corosync, crmsh, Pacemaker,
shellcheck) on every file the program renders for a VM, for the dev stack and variants.

Run as root (network namespaces, private mounts): `.venv/bin/pytest tests/validate -q`.
The tools come from `scripts/install-deps validate`; a missing one fails the tier, never skips it.
"""
