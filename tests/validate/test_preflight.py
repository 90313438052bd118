"""`scripts/up` on a host whose libvirt does not answer: the real virsh, a stand-in `pulumi`
that records whether it was run. The operator gets one message naming the setting, no traceback,
and Pulumi never starts."""

import os
import shutil
import subprocess
import uuid

import yaml

from tests.conftest import PROJECT


def test_up_stops_before_pulumi_when_libvirt_does_not_answer(tmp_path):
    socket = tmp_path / "no-libvirtd.sock"
    uri = f"qemu+unix:///system?socket={socket}"
    stack = f"t-preflight-{uuid.uuid4().hex[:8]}"
    stack_file = PROJECT / f"Pulumi.{stack}.yaml"
    cfg = yaml.safe_load((PROJECT / "Pulumi.dev.yaml").read_text())
    cfg["config"]["hapx:libvirtUri"] = uri
    # An existing network: its dnsmasq is not this host's to check, so one thing is missing.
    cfg["config"]["hapx:network"]["mode"] = "existing"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "pulumi-ran"
    for name, script in (("pulumi", f'#!/bin/sh\necho "$*" >> {ran}\n'), ("mkisofs", "#!/bin/sh\n")):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    stack_file.write_text(yaml.safe_dump(cfg))
    try:
        done = subprocess.run([str(PROJECT / "scripts" / "up"), stack], cwd=PROJECT, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
                                       PULUMI_CONFIG_PASSPHRASE="test"))
    finally:
        stack_file.unlink()
    assert shutil.which("virsh"), "virsh (libvirt-clients) is part of the validate tier"
    up_calls = [c for c in (ran.read_text().splitlines() if ran.exists() else []) if c.startswith("up")]
    assert (done.returncode, up_calls) == (1, []), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == (
        f"hapx.preflight: this host is not ready for `pulumi up` of stack {stack} (1 problem(s)):\n"
        f"  - hapx:libvirtUri: {uri} does not answer: Failed to connect socket to '{socket}': No such file "
        "or directory; is libvirtd running (systemctl start libvirtd) and may this user use it (the libvirt "
        "group)?\n")
