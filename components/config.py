"""Read the stack's `hapx:` configuration into validated Settings and secret overrides."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.runtime import config as runtime_config

from hapx.settings import NAMESPACE, TOP_LEVEL_KEYS, Settings, settings_from_dict

OBJECT_KEYS = ("nodes", "masters", "network", "vm", "corosync", "haproxy", "pacemaker")
SECRET_KEYS = ("statsPassword", "corosyncAuthkey", "sshPrivateKey")


def _configured_keys() -> set[str]:
    """Every `hapx:` key set on the stack, so that a misspelt key is reported, not ignored."""
    names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = NAMESPACE + ":"
    return {k[len(prefix):] for k in names if k.startswith(prefix)}


def settings_from_config(cfg: Optional[pulumi.Config] = None) -> Settings:
    """Settings from the stack config; raises SettingsError naming every bad key at once."""
    cfg = cfg or pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in sorted(_configured_keys() | set(TOP_LEVEL_KEYS)):
        if key in SECRET_KEYS:
            continue
        if key in OBJECT_KEYS:
            # Structured values (the node list, the masters, the sections) are YAML objects.
            # A missing one is left to the validator, which reports it with every other problem.
            value = cfg.require_object(key) if cfg.get(key) is not None else None
        else:
            value = cfg.get(key)
        if value is not None:
            raw[key] = value
    return settings_from_dict(raw)


def secret_overrides(cfg: Optional[pulumi.Config] = None) -> dict[str, Optional[pulumi.Output[str]]]:
    """Secrets given in the stack config (`pulumi config set --secret`); None means generate one."""
    cfg = cfg or pulumi.Config(NAMESPACE)
    return {
        "ssh_private_key": cfg.get_secret("sshPrivateKey"),
        "corosync_authkey": cfg.get_secret("corosyncAuthkey"),
        "stats_password": cfg.get_secret("statsPassword"),
    }
