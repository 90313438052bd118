"""Read the stack's `hapx:` configuration into validated Settings and the given secrets.

Everything, the secrets included, is read and checked here, synchronously, before the program
registers a resource: a bad value stops `pulumi up` with one message that lists every problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import pulumi
from pulumi.runtime import config as runtime_config

from hapx import spec
from hapx.model import GivenSecret, Settings, SettingsError
from hapx.settings import local_problems, settings_from_dict

# Each secret setting's HaproxyClusterArgs field.
SECRET_ARGS = {"sshPrivateKey": "ssh_private_key", "corosyncAuthkey": "corosync_authkey",
               "statsPassword": "stats_password"}


def _configured_keys() -> set[str]:
    """Every config key set on the stack (all namespaces), so that a typo is reported, not ignored."""
    return set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())


def _raw_value(full_key: str, key: str) -> Any:
    """A key's value as the stack gives it; objects decoded from their JSON text."""
    text = runtime_config.get_config(full_key)
    if text is None:
        return None
    if key in spec.OBJECT_KEYS:
        try:
            return json.loads(text)
        except ValueError:
            return text  # the validator names the key and what it should be
    return text


def checked_settings(raw: Mapping[str, Any], other_keys: Iterable[str] = ()) -> Settings:
    """Settings from a stack's `hapx:` values, checked as `pulumi up` checks them: every rule, then
    what only this machine can see (a local baseImage, relative to the working directory); raise
    SettingsError listing every problem."""
    settings = settings_from_dict(raw, other_keys)
    problems = local_problems(settings, os.getcwd())
    if problems:
        raise SettingsError(problems)
    return settings


def read_config() -> tuple[Settings, dict[str, Optional[pulumi.Output[str]]]]:
    """Settings and the given secrets (None: generate one); raise pulumi.RunError listing every problem."""
    keys = _configured_keys()
    prefix = spec.NAMESPACE + ":"
    raw: dict[str, Any] = {}
    secrets: dict[str, Optional[pulumi.Output[str]]] = dict.fromkeys(SECRET_ARGS.values())
    for full in sorted(k for k in keys if k.startswith(prefix)):
        key = full[len(prefix):]
        value = _raw_value(full, key)
        if value is None:
            continue
        if key in spec.SECRET_KEYS:
            raw[key] = GivenSecret(value, encrypted=runtime_config.is_config_secret(full))
            secrets[SECRET_ARGS[key]] = pulumi.Output.secret(value)
        else:
            raw[key] = value
    try:
        settings = checked_settings(raw, (k for k in keys if not k.startswith(prefix)))
    except SettingsError as err:
        # RunError: Pulumi prints the message alone, without a Python stack trace.
        raise pulumi.RunError(str(err)) from None
    return settings, secrets
