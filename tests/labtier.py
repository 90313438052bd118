"""What the two lab tiers (containers, vm) share: their prerequisites and one lab per session."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lab import labclient, labnet

TOOLS = {
    "containers": ("systemd-nspawn", "mmdebstrap", "nsenter", "unshare", "ip", "bridge", "ssh", "openssl", "curl",
                   "dnsmasq"),
    "vm": ("libvirtd", "virsh", "dnsmasq", "qemu-system-x86_64", "qemu-img", "mmdebstrap", "nsenter", "unshare",
           "ip", "bridge", "ssh", "openssl", "curl"),
}


def require(backend: str) -> None:
    """Fail (never skip) when this host cannot run the tier."""
    if os.geteuid() != 0:
        pytest.fail(f"the {backend} lab tier needs root (network namespaces): run it as root", pytrace=False)
    missing = [t for t in TOOLS[backend] if not shutil.which(t)]
    if backend == "vm" and not shutil.which("pulumi") and not shutil.which("go"):
        missing.append("pulumi (or go, to build it: scripts/build-engine)")
    if missing:
        pytest.fail(f"the {backend} lab tier needs {', '.join(missing)}: scripts/install-deps lab", pytrace=False)


@contextmanager
def lab_session(backend: str, up_timeout: float, *up_args: str) -> Iterator[labclient.Lab]:
    """The lab up for a test session and torn down at the end, whatever happened.

    HAPX_LAB_REUSE=1 uses a lab that is already up; HAPX_LAB_KEEP=1 leaves it up afterwards."""
    require(backend)
    try:
        if not (os.environ.get("HAPX_LAB_REUSE") and labclient.state_file(backend).exists()):
            # Its output (progress, phase timings) goes to pytest's capture: shown with -s or on failure.
            res = subprocess.run([sys.executable, str(labclient.LABCTL), "--backend", backend, "up", *up_args],
                                 timeout=up_timeout)
            if res.returncode != 0:
                pytest.fail(f"labctl --backend {backend} up failed ({res.returncode}); its output is above",
                            pytrace=False)
        yield labclient.Lab(backend)
    finally:
        if not os.environ.get("HAPX_LAB_KEEP"):
            subprocess.run([sys.executable, str(labclient.LABCTL), "--backend", backend, "down"], timeout=900)


def check_vip_serves_through_haproxy(lab: labclient.Lab) -> None:
    """HTTPS through the VIP's API port reaches the stand-in API servers, round robin, with
    their certificate (HAProxy passes TLS through, it does not terminate it)."""
    res = lab.https("/healthz")
    assert res.returncode == 0 and res.stdout.rstrip().endswith("ok"), res.stdout + res.stderr
    der = ssl.PEM_cert_to_DER_cert(lab.tls_cert.read_text())
    assert f"peer-certificate-sha256: {hashlib.sha256(der).hexdigest()}" in res.stdout, \
        "the VIP did not present the stand-in's certificate: is HAProxy terminating TLS?"
    served = set()
    for _ in range(6):
        m = re.search(r'"server": "([^"]+)"', lab.https("/version").stdout)
        assert m
        served.add(m.group(1))
    hosts = lab.state["lab"].get("dns_hosts", {})  # masters by name: the addresses the lab's DNS serves
    assert len(served) >= 2 and served <= {labnet.standin_address(m, hosts) for m in lab.masters}, served
