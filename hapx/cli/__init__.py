"""The command-line entry points, run on the operator's machine: `python -m hapx.cli.NAME`.

render (write or check a stack's artifacts without the engine), preflight (what `pulumi up`
needs of the host) and status (the running pair at a glance). Nothing else in hapx/ imports them.
"""
