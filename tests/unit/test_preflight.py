"""The host preflight (hapx.cli.preflight) against a fake `virsh` on PATH: each thing `up` needs of
the host that is missing gives one message naming its setting, all at once."""

import copy
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hapx.cli import preflight
from hapx.settings import settings_from_dict

CONNECT_FAILED = ("error: failed to connect to the hypervisor\n"
                  "error: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory")
NO_POOL = ("error: failed to get pool 'default'\n"
           "error: Storage pool not found: no storage pool with matching name 'default'")
POOL_RUNNING = "Name:           default\nUUID:           1b2c\nState:          running\nPersistent:     yes\n"
POOL_INACTIVE = POOL_RUNNING.replace("running", "inactive")
NO_NETWORK = ("error: failed to get network 'lan'\n"
              "error: Network not found: no network with matching name 'lan'")
NETWORK_ACTIVE = "Name:           lan\nUUID:           3d4e\nActive:         yes\nPersistent:     yes\n"
NO_KVM = ("error: failed to get emulator capabilities\n"
          "error: invalid argument: KVM is not supported by '/usr/bin/qemu-system-x86_64' on this host")
VERSION = "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A stand-in host: PATH holds only a fake virsh (answers set per subcommand) and mkisofs,
    and a dnsmasq binary; each can be taken away."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))

    class Host:
        dnsmasq = executable(tmp_path / "dnsmasq", "#!/bin/sh\n")
        calls = tmp_path / "calls"
        has_virsh = True

        def __init__(self):
            self.answers: dict[str, str] = {}
            for cmd, output in (("version", VERSION), ("pool-info", POOL_RUNNING), ("net-info", NETWORK_ACTIVE),
                                ("domcapabilities", "<domainCapabilities/>")):
                self.virsh(cmd, 0, output)
            executable(bin_dir / "mkisofs", "#!/bin/sh\n")

        def virsh(self, cmd: str, rc: int, output: str) -> None:
            """virsh CMD prints output (on stderr when it fails) and exits rc."""
            self.answers[cmd] = f"cat {'>&2' if rc else ''} <<'EOF'\n{output}\nEOF\n  exit {rc}"

        def hang(self, cmd: str) -> None:
            self.answers[cmd] = "exec sleep 60"

        def remove(self, name: str) -> None:
            if name == "virsh":
                self.has_virsh = False
            else:
                (bin_dir / name).unlink()

        def problems(self, cfg: dict) -> tuple[list[str], list[str]]:
            if self.has_virsh:
                cases = "".join(f"  {cmd}) {script};;\n" for cmd, script in self.answers.items())
                executable(bin_dir / "virsh", f'#!/bin/sh\nPATH=/usr/bin:/bin\necho "$LC_ALL $*" >> {self.calls}\n'
                                              f'for a; do case "$a" in\n{cases}esac; done\nexit 3\n')
            return preflight.host_problems(settings_from_dict(cfg), dnsmasq=str(self.dnsmasq))

    return Host()


def config(dev_config, **top) -> dict:
    cfg = copy.deepcopy(dev_config)
    cfg.update(top)
    return cfg


def test_a_ready_host_has_no_problems(host, dev_config):
    assert host.problems(dev_config) == ([], [])
    assert host.calls.read_text().splitlines() == [
        "C -q -c qemu:///system version", "C -q -c qemu:///system pool-info default",
        "C -q -c qemu:///system domcapabilities --virttype kvm"]


def test_a_uri_that_does_not_answer_is_one_message(host, dev_config):
    host.virsh("version", 1, CONNECT_FAILED)
    assert host.problems(dev_config) == ([
        "hapx:libvirtUri: qemu:///system does not answer: Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': No such file or directory; is libvirtd running "
        "(systemctl start libvirtd) and may this user use it (the libvirt group)?"], [])
    # Nothing more is asked of a libvirtd that does not answer.
    assert host.calls.read_text().splitlines() == ["C -q -c qemu:///system version"]


def test_a_uri_that_hangs_is_bounded(host, dev_config, monkeypatch):
    monkeypatch.setattr(preflight, "VIRSH_TIMEOUT_S", 1)
    host.hang("version")
    t0 = time.monotonic()
    problems, _ = host.problems(dev_config)
    assert time.monotonic() - t0 < 30
    assert problems == ["hapx:libvirtUri: qemu:///system does not answer: no answer within 1 s; is libvirtd "
                        "running (systemctl start libvirtd) and may this user use it (the libvirt group)?"]


def test_a_missing_pool_a_missing_mkisofs_and_dnsmasq_are_listed_at_once(host, dev_config):
    host.virsh("pool-info", 1, NO_POOL)
    host.remove("mkisofs")
    host.dnsmasq = Path("/nonexistent/dnsmasq")
    assert host.problems(dev_config)[0] == [
        "mkisofs is not installed: apt-get install genisoimage (pulumi-libvirt makes the nodes' cloud-init "
        "disks with it, on this machine)",
        "hapx:network.mode: create needs dnsmasq, which libvirt starts for the network's DNS: "
        "/nonexistent/dnsmasq is missing (apt-get install dnsmasq-base)",
        "hapx:storagePool: no storage pool 'default' on qemu:///system (Storage pool not found: no storage "
        "pool with matching name 'default'): define one, e.g. virsh pool-define-as default dir --target "
        "/var/lib/libvirt/images; virsh pool-start default; virsh pool-autostart default"]


def test_a_pool_that_is_not_started(host, dev_config):
    host.virsh("pool-info", 0, POOL_INACTIVE)
    assert host.problems(config(dev_config, storagePool="default"))[0] == [
        "hapx:storagePool: storage pool 'default' on qemu:///system is inactive: virsh pool-start default"]


def test_kvm_that_is_not_usable_points_at_qemu(host, dev_config):
    host.virsh("domcapabilities", 1, NO_KVM)
    assert host.problems(dev_config)[0] == [
        "hapx:domainType: kvm is not usable on qemu:///system (invalid argument: KVM is not supported by "
        "'/usr/bin/qemu-system-x86_64' on this host): set hapx:domainType to qemu for software emulation"]
    host.calls.unlink()
    assert host.problems(config(dev_config, domainType="qemu")) == ([], [])
    assert "domcapabilities" not in host.calls.read_text()


def test_an_existing_network_must_be_there_and_active(host, dev_config):
    cfg = config(dev_config)
    cfg["network"] = dict(cfg["network"], mode="existing", name="lan")
    host.virsh("net-info", 1, NO_NETWORK)
    assert host.problems(cfg)[0] == [
        "hapx:network.name: no libvirt network 'lan' on qemu:///system (Network not found: no network with "
        "matching name 'lan'), which network.mode existing joins"]
    host.virsh("net-info", 0, NETWORK_ACTIVE.replace("Active:         yes", "Active:         no"))
    assert host.problems(cfg)[0] == [
        "hapx:network.name: libvirt network 'lan' on qemu:///system is not active: virsh net-start lan"]
    # An existing network's dnsmasq is the operator's: not asked for.
    host.virsh("net-info", 0, NETWORK_ACTIVE)
    host.dnsmasq = Path("/nonexistent/dnsmasq")
    assert host.problems(cfg) == ([], [])


def test_a_remote_uri_says_dnsmasq_is_not_checked(host, dev_config):
    host.dnsmasq = Path("/nonexistent/dnsmasq")
    assert host.problems(config(dev_config, libvirtUri="qemu+ssh://hv1/system")) == ([], [
        "hapx:network.mode: create needs dnsmasq on the host of qemu+ssh://hv1/system "
        "(/usr/sbin/dnsmasq, Debian's dnsmasq-base): not checked from here"])


def test_no_virsh_is_one_message(host, dev_config):
    host.remove("virsh")
    problems, _ = host.problems(dev_config)
    assert problems == ["hapx:libvirtUri: cannot check qemu:///system: virsh is not installed (apt-get install "
                        "libvirt-clients; the VMs run on a libvirtd: libvirt-daemon-system qemu-system-x86)"]


@pytest.mark.parametrize("uri, local", [("qemu:///system", True), ("qemu:///session", True),
                                        ("qemu+unix:///system?socket=/run/x.sock", True),
                                        ("qemu+ssh://root@hv1/system", False), ("qemu+tcp://hv1:16509/system", False)])
def test_which_uris_are_this_machine(uri, local):
    assert preflight.is_local(uri) is local


def test_the_command_lists_the_problems_and_exits_non_zero(tmp_path, dev_config):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "virsh", f"#!/bin/sh\nPATH=/usr/bin:/bin\ncat >&2 <<'EOF'\n{CONNECT_FAILED}\nEOF\nexit 1\n")
    executable(bin_dir / "mkisofs", "#!/bin/sh\n")
    stack = tmp_path / "Pulumi.t.yaml"
    stack.write_text("config:\n  hapx:vip: 192.168.4.20\n  hapx:network: {mode: existing, name: lan, cidr: 192.168.4.0/24}\n"
                     "  hapx:nodes: [{name: a, ip: 192.168.4.21}, {name: b, ip: 192.168.4.22}]\n"
                     "  hapx:masters: [{name: m1, address: 10.0.0.1}]\n")
    done = subprocess.run([sys.executable, "-m", "hapx.cli.preflight", "--stack", "t", "--config", str(stack)],
                          cwd=Path(preflight.__file__).parents[2], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH=str(bin_dir)))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", (
        "hapx.preflight: this host is not ready for `pulumi up` of stack t (1 problem(s)):\n"
        "  - hapx:libvirtUri: qemu:///system does not answer: Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': No such file or directory; is libvirtd running (systemctl start "
        "libvirtd) and may this user use it (the libvirt group)?\n"))
