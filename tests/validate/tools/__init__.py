"""The VALIDATE tier's tools: run the real Debian tools on rendered files, one module per tool.

Every `check_*` function runs one real tool (the same versions the VMs run: haproxy 2.6,
cloud-init 22.4, corosync 3.1, pacemaker 2.1, crmsh 4.4, shellcheck 0.9) and raises
`CheckFailed` with the command line and the tool's own output when the tool rejects its
input; when the tool accepts, it returns the `ToolResult`. Positive and negative tests go
through these same functions, so a negative test proves that the check can fail.

Side effects are kept off the host: corosync and crmsh write log files and the configure
step writes under /var/lib, so those run in a private mount namespace with a tmpfs over the
directories they write; network namespaces are named `hapx-val-<pid>-<n>` and always
deleted (stale ones from a crashed run are removed by the tier's conftest). The HAProxy start
check runs HAProxy for real, in such a namespace and in a PID namespace of its own, so the
daemon dies with the check.

- procs: what every module shares (run, ToolResult, CheckFailed, private_mounts, parallel, write_broken)
- host: the tools and agents the tier needs, and their Debian packages
- netns: the throwaway network namespaces
- agents: where the OCF agents are (packaged, and hapx's own)
- haproxy, cloud_init, corosync: one module per tool
- crmsh: crmsh's environment and `crm configure load`; pacemaker: the CIB, crm_verify, crm_simulate
- shell: bash -n, shellcheck, here-documents, a step script run against an offline CIB
"""
