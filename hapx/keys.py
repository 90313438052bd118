"""Generate the stack's secrets: SSH key pairs, the corosync authkey, the stats password."""

from __future__ import annotations

import base64
import secrets
import string

from hapx.rendering import HostKey

AUTHKEY_BYTES = 256  # what corosync-keygen writes
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def ssh_keypair(comment: str) -> HostKey:
    """A new ed25519 key pair: OpenSSH private key text and the one-line public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return HostKey(private=private, public=f"{public} {comment}")


def public_key_of(private_openssh: str, comment: str = "") -> str:
    """The one-line OpenSSH public key of an OpenSSH private key given as a secret."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_openssh.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{public} {comment}".strip()


def corosync_authkey() -> str:
    """A new corosync authkey, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(AUTHKEY_BYTES)).decode()


def password(length: int = 24) -> str:
    """A new random password of letters and digits (safe inside haproxy.cfg)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
