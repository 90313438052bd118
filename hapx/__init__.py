"""hapx: the pure layer (settings, rendering, bootstrap plan) behind the Pulumi program."""
