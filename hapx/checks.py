"""One setting's value read from the raw configuration and checked by its kind (hapx.spec).

The Reader collects every problem instead of raising; the per-kind checkers and the secrets'
rules say what is wrong with a value, naming its `hapx:` key and never a secret's value.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Optional

from hapx import spec
from hapx.model import GivenSecret
from hapx.spec import NAMESPACE, Setting


class Reader:
    """Reads typed values from a raw config mapping, collecting problems instead of raising."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.problems: list[str] = []
        # Addresses whose places (the VIP, the nodes) are read after them: checked at the end.
        self.later: list[tuple[str, str, Any, Optional[str], str]] = []

    def fail(self, key: str, msg: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {msg}")

    def unknown(self, src: Mapping[str, Any], section: str, label: str) -> None:
        """Report keys of src the spec does not know in section."""
        known = spec.keys_in(section)
        for extra in sorted(map(str, set(src) - known)):
            where = f"{label}.{extra}" if label else extra
            self.fail(where, f"unknown setting (known: {', '.join(sorted(known))})" if label else "unknown setting")

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object, got {kind_of(value)}")
            return {}
        self.unknown(value, key, key)
        return value

    def value(self, key: str, src: Optional[Mapping[str, Any]] = None, label: Optional[str] = None,
              default: Any = None) -> Any:
        """The value of spec key in src (the top level by default), checked; None if missing or bad.

        default replaces a spec default that depends on other settings."""
        s = spec.setting(key)
        src = self.raw if src is None else src
        label = label or key
        if s.name not in src or src[s.name] is None:
            if s.required:
                self.fail(label, "is required")
                return None
            return s.default if default is None else default
        return _CHECKS[s.kind](self, s, src[s.name], label)

    def section_values(self, section: str, src: Mapping[str, Any], **derived: Any) -> dict[str, Any]:
        """Every plain setting of a section by its Settings field; derived gives computed defaults."""
        return {s.attr: self.value(s.key, src, default=derived.get(s.attr))
                for s in spec.SPEC if s.section == section and s.attr}


def kind_of(value: Any) -> str:
    """What a raw value is, in words ("a list"), for a message."""
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "a string"}.get(type(value), type(value).__name__)


def _check_string(r: Reader, s: Setting, value: Any, label: str) -> Optional[str]:
    if not isinstance(value, str) or not value:
        r.fail(label, f"must be a non-empty string, got {value!r}")
        return None
    if value != value.strip():
        r.fail(label, f"has leading or trailing white space: {value!r}")
        return None
    if s.pattern and not re.fullmatch(s.pattern, value):
        r.fail(label, f"{value!r} is not valid: {s.pattern_doc}")
        return None
    return value


def _check_integer(r: Reader, s: Setting, value: Any, label: str) -> Optional[int]:
    # Pulumi hands top-level values over as strings; objects keep their YAML numbers.
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value)):
        r.fail(label, f"must be an integer, got {value!r}")
        return None
    number = int(value)
    assert s.lo is not None and s.hi is not None, f"{s.key}: an integer setting has bounds in the spec"
    if not s.lo <= number <= s.hi:
        r.fail(label, f"must be between {s.lo} and {s.hi}, got {number}")
        return None
    return number


def _check_choice(r: Reader, s: Setting, value: Any, label: str) -> Optional[str]:
    if value not in s.choices:
        r.fail(label, f"must be one of {', '.join(s.choices)}, got {value!r}")
        return None
    return value


def check_ipv4(r: Reader, s: Optional[Setting], value: Any, label: str) -> Optional[ipaddress.IPv4Address]:
    """value as an IPv4 address, or None after reporting it at label."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.IPv4Address(value)
    except ValueError:
        r.fail(label, f"is not an IPv4 address: {value!r}")
        return None


def _check_network(r: Reader, s: Setting, value: Any, label: str) -> Optional[ipaddress.IPv4Network]:
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        cidr = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        r.fail(label, f"is not an IPv4 network: {value!r} ({err})")
        return None
    for bad, what in ((cidr.prefixlen < 8, "is larger than a /8"),
                      (cidr.prefixlen > 29, "is too small for two nodes, a gateway and a VIP"),
                      (cidr.is_loopback, "is a loopback network"),
                      (cidr.is_link_local, "is link-local (169.254.0.0/16)"),
                      (cidr.is_multicast, "is a multicast network"),
                      (cidr.subnet_of(ipaddress.IPv4Network("0.0.0.0/8")), "is inside 0.0.0.0/8 (\"this network\")"),
                      (cidr.subnet_of(ipaddress.IPv4Network("240.0.0.0/4")), "is reserved (240.0.0.0/4)")):
        if bad:
            r.fail(label, f"{cidr} {what}")
            return None
    return cidr


def _check_list(r: Reader, s: Setting, value: Any, label: str) -> Optional[list]:
    if not isinstance(value, list) or not value:
        r.fail(label, f"must be a non-empty list, got {value!r}")
        return None
    return value


def _check_secret(r: Reader, s: Setting, value: Any, label: str) -> Optional[GivenSecret]:
    given = value if isinstance(value, GivenSecret) else GivenSecret(value if isinstance(value, str) else None,
                                                                    encrypted=False)
    if not given.encrypted:
        r.fail(label, f"is stored in plain text: set it with `pulumi config set --secret {NAMESPACE}:{s.key}`")
    if not given.encrypted and given.value is None:
        r.fail(label, f"must be a string, got {kind_of(value)}")
        return None
    if given.value is not None:
        problem = _SECRET_RULES[s.key](given.value)
        if problem:
            r.fail(label, problem)  # the rule's words, never the value
            return None
    return given


def _stats_password_problem(value: str) -> Optional[str]:
    s = spec.setting("statsPassword")
    assert s.pattern is not None, "statsPassword has a pattern in the spec"
    return None if re.fullmatch(s.pattern, value) else f"must be {s.pattern_doc}"


def _authkey_problem(value: str) -> Optional[str]:
    try:
        key = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if not spec.AUTHKEY_MIN_BYTES <= len(key) <= spec.AUTHKEY_MAX_BYTES:
        return (f"decodes to {len(key)} bytes; corosync needs {spec.AUTHKEY_MIN_BYTES} to "
                f"{spec.AUTHKEY_MAX_BYTES} (corosync-keygen makes 256)")
    return None


def _ssh_key_problem(value: str) -> Optional[str]:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_private_key(value.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as err:
        reason = "it is encrypted" if "password" in str(err).lower() else "it does not parse"
        return f"is not an unencrypted OpenSSH private key ({reason})"
    return None


_CHECKS = {spec.STRING: _check_string, spec.INTEGER: _check_integer, spec.CHOICE: _check_choice,
           spec.IPV4: check_ipv4, spec.NETWORK: _check_network, spec.LIST: _check_list,
           spec.SECRET: _check_secret}
_SECRET_RULES = {"statsPassword": _stats_password_problem, "corosyncAuthkey": _authkey_problem,
                 "sshPrivateKey": _ssh_key_problem}

