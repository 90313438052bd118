"""The resource graph of the real program under Pulumi mocks, for the dev stack and three nodes."""

import copy

import pulumi
import pytest

from tests.conftest import PROJECT
from tests.unit.pulumi_harness import GraphMocks, run_program

DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
CLOUDINIT = "libvirt:index/cloudInitDisk:CloudInitDisk"
NETWORK = "libvirt:index/network:Network"
COMMAND = "command:remote:Command"
CLUSTER = "hapx:index:HaproxyCluster"
NODE = "hapx:index:HaproxyNode"
DNS_HOSTS = [{"name": "kube-mast01", "address": "192.168.4.101"}, {"name": "kube-mast02", "address": "192.168.4.102"}]


@pytest.fixture(scope="module")
def dev_graph():
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    return run_program(load_stack_file(str(PROJECT / "Pulumi.dev.yaml")))


@pytest.fixture(scope="module")
def three_graph():
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    cfg = load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))
    cfg["nodes"] = cfg["nodes"] + [{"name": "hapx-node03", "ip": "192.168.4.23"}]
    cfg["network"] = dict(cfg["network"], dnsHosts=DNS_HOSTS)
    return run_program(cfg)


def test_resource_counts(dev_graph, three_graph):
    for graph, n in ((dev_graph, 2), (three_graph, 3)):
        assert len(graph.of_type(CLUSTER)) == 1
        assert len(graph.of_type(NODE)) == n
        assert len(graph.of_type(DOMAIN)) == n
        assert len(graph.of_type(CLOUDINIT)) == n
        assert len(graph.of_type(VOLUME)) == n + 1  # one base, one disk per node
        assert len(graph.of_type(NETWORK)) == 1
        assert len(graph.of_type(COMMAND)) == 4 * n + 3 + n  # the bootstrap steps and a drain per node


def test_every_disk_is_cloned_from_the_one_base_volume(three_graph):
    volumes = three_graph.of_type(VOLUME)
    bases = [r for r in volumes.values() if "source" in r.inputs]
    assert len(bases) == 1
    base = bases[0]
    assert base.inputs["source"].endswith("debian-12-generic-amd64.qcow2")
    assert "size" not in base.inputs  # a URL source cannot be sized
    disks = [r for r in volumes.values() if r is not base]
    assert {d.inputs["baseVolumeId"] for d in disks} == {f"{base.name}-id"}
    assert all(d.inputs["size"] == 10 * 1024**3 for d in disks)


def test_each_domain_is_wired_to_its_disk_cloudinit_and_network(dev_graph):
    net = next(iter(dev_graph.of_type(NETWORK).values()))
    assert net.inputs["addresses"] == ["192.168.4.0/24"]
    assert net.inputs["mode"] == "nat"
    # No DHCP on the network the stack creates: nothing can be handed the VIP.
    assert net.inputs["dhcp"] == {"enabled": False}
    expected = {"hapx-node01": "192.168.4.21", "hapx-node02": "192.168.4.22"}
    for node, ip in expected.items():
        dom = dev_graph.resources[f"{node}-domain"]
        assert dom.inputs["type"] == "kvm"
        assert dom.inputs["disks"] == [{"volumeId": f"{node}-disk-id"}]
        assert dom.inputs["cloudinit"] == f"{node}-cloudinit-id"
        (nic,) = dom.inputs["networkInterfaces"]
        assert nic["networkId"] == f"{net.name}-id"
        # Static in the guest: no DHCP reservation (which the provider would diff forever).
        assert "addresses" not in nic and "hostname" not in nic
        assert nic["mac"].startswith("52:54:00:")
        assert nic["waitForLease"] is False
        assert ip in dev_graph.resources[f"{node}-cloudinit"].inputs["networkConfig"]
        assert dev_graph.parents[f"{node}-domain"] == node
        assert dev_graph.parents[node] == "hapx"
        ci = dev_graph.resources[f"{node}-cloudinit"]
        assert ci.inputs["userData"].startswith("#cloud-config")
        assert nic["mac"] in ci.inputs["networkConfig"]


def test_the_created_network_serves_the_dns_hosts(dev_graph, three_graph):
    (net,) = three_graph.of_type(NETWORK).values()
    assert net.inputs["domain"] == "kube.local"
    assert net.inputs["dns"] == {"enabled": True, "localOnly": True, "hosts": [
        {"hostname": h["name"], "ip": h["address"]} for h in DNS_HOSTS]}
    (net,) = dev_graph.of_type(NETWORK).values()
    assert net.inputs["dns"] == {"enabled": True, "localOnly": True}


def test_an_existing_network_is_used_by_name():
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    cfg = load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))
    cfg["network"] = dict(cfg["network"], mode="existing", name="lan0")
    graph = run_program(cfg)
    assert not graph.of_type(NETWORK)
    for dom in graph.of_type(DOMAIN).values():
        assert dom.inputs["networkInterfaces"][0]["networkName"] == "lan0"


def test_commands_run_in_the_plans_order(three_graph):
    from hapx import bootstrap
    from hapx.settings import settings_from_dict
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    g = three_graph
    commands = g.of_type(COMMAND)
    for name in commands:
        assert g.parents[name] == "hapx"
    cfg = load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))
    cfg["nodes"] = cfg["nodes"] + [{"name": "hapx-node03", "ip": "192.168.4.23"}]
    for step in bootstrap.plan(settings_from_dict(cfg)):
        # Each Command waits for its node's VM and exactly the steps the plan names.
        assert g.depends_on[f"hapx-{step.id}"] == {f"{step.node}-domain"} | {f"hapx-{a}" for a in step.after}


def test_nodes_are_built_one_after_another(three_graph):
    """A node's disk, cloud-init disk and VM wait for the node before it to be back in the
    cluster: Pulumi builds (and rebuilds) the nodes one at a time, never two at once."""
    g = three_graph
    nodes = ["hapx-node01", "hapx-node02", "hapx-node03"]
    for i, n in enumerate(nodes):
        expect = {f"hapx-join-{nodes[i - 1]}"} if i else set()
        for part in ("disk", "cloudinit"):
            assert g.depends_on[f"{n}-{part}"] == expect, (n, part)
        assert g.depends_on[f"{n}-domain"] == expect
        assert g.opts[f"{n}-domain"].delete_before_replace is True


def test_rebuild_keys_change_the_disk_and_cloudinit_names(dev_config):
    """A change cloud-init applies renames the node's disk and cloud-init disk (so the VM is
    rebuilt on a fresh disk); a change the steps apply leaves every libvirt input alone."""
    before = run_program(dev_config)
    user = copy.deepcopy(dev_config)
    user["sshUser"] = "ops"
    rebuilt = run_program(user)
    for n in ("hapx-node01", "hapx-node02"):
        for part in ("disk", "cloudinit"):
            assert before.resources[f"{n}-{part}"].inputs["name"] != rebuilt.resources[f"{n}-{part}"].inputs["name"]
    addr = copy.deepcopy(dev_config)
    addr["nodes"][1]["ip"] = "192.168.4.32"
    moved = run_program(addr)
    assert before.resources["hapx-node01-disk"].inputs == moved.resources["hapx-node01-disk"].inputs
    assert before.resources["hapx-node02-disk"].inputs["name"] != moved.resources["hapx-node02-disk"].inputs["name"]
    timers = copy.deepcopy(dev_config)
    timers["corosync"] = {"tokenMs": 1000}
    tuned = run_program(timers)
    for kind in (DOMAIN, VOLUME, CLOUDINIT, NETWORK):
        for name, res in before.of_type(kind).items():
            assert res.inputs == tuned.resources[name].inputs, name


def test_commands_connect_safely(dev_graph):
    import yaml

    pinned = {}
    for node, ip in (("hapx-node01", "192.168.4.21"), ("hapx-node02", "192.168.4.22")):
        user_data = yaml.safe_load(dev_graph.resources[f"{node}-cloudinit"].inputs["userData"])
        pinned[ip] = " ".join(user_data["ssh_keys"]["ed25519_public"].split()[:2])
    for name, cmd in dev_graph.of_type(COMMAND).items():
        conn = cmd.inputs["connection"]
        assert conn["hostKey"] == pinned[conn["host"]]  # the key the node was given
        assert conn["user"] == "debian"
        assert conn["hostKey"].startswith("ssh-ed25519 ") and len(conn["hostKey"].split()) == 2
        assert "connection" in dev_graph.secret_inputs[name]  # it carries the private key
        assert cmd.inputs["addPreviousOutputInEnv"] is False
        if "-drain-" in name:
            # A peer of a running cluster, not a booting VM (test_drains_act_only_when_their_node_is_replaced).
            assert 5 <= conn["dialErrorLimit"] < 60
            continue
        assert conn["dialErrorLimit"] >= 60
        opts = dev_graph.opts[name]
        assert opts.deleted_with is not None and opts.deleted_with._name.endswith("-domain")
        triggers = cmd.inputs["triggers"]
        assert len(triggers) >= 2 and triggers[1].endswith("-domain-id")


def test_drains_act_only_when_their_node_is_replaced(dev_graph):
    """A drain per node: nothing on create, the drain script on delete; its trigger is the
    domain of the node it drains (replaced with it, and deleted before it), but it connects to
    a peer, so a dead VM can be replaced; deleted with the provider, so `pulumi destroy` never
    runs it."""
    from hapx import bootstrap
    from hapx.settings import settings_from_dict
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    settings = settings_from_dict(load_stack_file(str(PROJECT / "Pulumi.dev.yaml")))
    drains = bootstrap.drains(settings)
    assert {d.target for d in drains} == {n.name for n in settings.nodes}
    for drain in drains:
        name = f"hapx-{drain.id}"
        cmd = dev_graph.resources[name]
        assert drain.node != drain.target
        assert "create" not in cmd.inputs and "update" not in cmd.inputs
        assert cmd.inputs["delete"] == drain.command
        assert cmd.inputs["connection"]["host"] == str(settings.node(drain.node).ip)
        assert cmd.inputs["triggers"] == [f"{drain.target}-domain-id"]
        assert dev_graph.depends_on[name] == {f"{drain.target}-domain"}
        assert dev_graph.opts[name].deleted_with._name == "hapx-libvirt"
        # A preference for every other node, never a ban of this one (a ban can strand the VIP).
        assert 'rsc_location id=\\"$rule\\" rsc=\\"vip\\"' in drain.script
        assert 'score=\\"INFINITY\\"' in drain.script and 'operation=\\"ne\\"' in drain.script
        assert "--ban" not in drain.script


def test_secrets_travel_on_stdin_and_stay_secret(dev_graph):
    g = dev_graph
    for name, cmd in g.of_type(COMMAND).items():
        if "-join-" in name or "install-haproxy" in name:
            assert "stdin" in g.secret_inputs[name]
        assert "stats auth" not in cmd.inputs.get("create", cmd.inputs.get("delete"))
    stats_password = g.outputs["statsPassword"]
    for cmd in g.of_type(COMMAND).values():
        assert stats_password not in cmd.inputs.get("create", cmd.inputs.get("delete"))
        assert stats_password not in str(cmd.inputs["triggers"])
    for name in g.of_type(CLOUDINIT):
        assert "user_data" in g.secret_inputs[name]
    assert {"sshPrivateKey", "statsPassword"} <= g.secret_outputs


def test_outputs(dev_graph):
    out = dev_graph.outputs
    assert out["vip"] == "192.168.4.20"
    assert out["nodeIps"] == {"hapx-node01": "192.168.4.21", "hapx-node02": "192.168.4.22"}
    assert out["backendMasters"] == [
        "kube-mast01 kube-mast01:6443", "kube-mast02 kube-mast02:6443", "kube-mast03 kube-mast03:6443"]
    assert out["apiEndpoint"] == "192.168.4.20:6443"
    assert out["statsUrl"] == "http://192.168.4.20:32700/"
    # Each node's own address (a scraper sees both nodes), the port haproxy.cfg binds.
    assert out["metricsUrls"] == {"hapx-node01": "http://192.168.4.21:8405/metrics",
                                  "hapx-node02": "http://192.168.4.22:8405/metrics"}
    assert out["statsUser"] == "admin"
    assert out["sshUser"] == "debian"
    assert out["sshPrivateKey"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # The host keys the Commands pin, for an operator's known_hosts.
    for node, ip in out["nodeIps"].items():
        cmd = dev_graph.resources[f"hapx-wait-ready-{node}"]
        assert cmd.inputs["connection"]["host"] == ip
        assert out["nodeHostKeys"][node] == cmd.inputs["connection"]["hostKey"]
    public = {"vip", "nodeIps", "backendMasters", "apiEndpoint", "statsUrl", "metricsUrls", "statsUser", "sshUser",
              "nodeHostKeys"}
    assert not public & dev_graph.secret_outputs


def test_changing_a_master_changes_only_the_haproxy_steps(dev_config):
    before = run_program(dev_config)
    cfg = copy.deepcopy(dev_config)
    cfg["masters"][2] = {"name": "kube-mast04", "address": "kube-mast04", "port": 6443}
    after = run_program(cfg)
    changed = set()
    for name, cmd in before.of_type(COMMAND).items():
        other = after.resources[name]
        if any(cmd.inputs.get(k) != other.inputs.get(k) for k in ("create", "delete", "stdin", "triggers")):
            changed.add(name)
    assert changed == {"hapx-install-haproxy-hapx-node01", "hapx-install-haproxy-hapx-node02"}
    for kind in (DOMAIN, VOLUME, CLOUDINIT, NETWORK):
        for name, res in before.of_type(kind).items():
            assert res.inputs == after.resources[name].inputs, name


def test_secret_config_overrides_generation(dev_config):
    from hapx import keys

    pair = keys.ssh_keypair("given")
    graph = run_program(dev_config, secret_config={
        "statsPassword": "GivenPassw0rd", "sshPrivateKey": pair.private,
        "corosyncAuthkey": keys.corosync_authkey()})
    assert graph.outputs["statsPassword"] == "GivenPassw0rd"
    assert graph.outputs["sshPrivateKey"] == pair.private
    dynamic = {r.inputs.get("comment") or r.inputs.get("kind") for n, r in graph.resources.items()
               if r.typ.startswith("pulumi-python:dynamic")}
    assert dynamic == {"root@hapx-node01", "root@hapx-node02"}  # only the host keys are generated
    ci = graph.resources["hapx-node01-cloudinit"].inputs["userData"]
    assert pair.public.split()[1] in ci


def _refused(cfg: dict, **kw) -> str:
    """The message `pulumi up` stops with; nothing was registered before it."""
    mocks = GraphMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_program(cfg, mocks=mocks, **kw)
    assert mocks.resources == {}
    return str(err.value)


def test_bad_config_fails_before_any_resource(dev_config):
    cfg = copy.deepcopy(dev_config)
    cfg["vip"] = "192.168.9.20"
    cfg["haproxy"] = {"statsPort": 99999}
    text = _refused(cfg)
    assert "hapx:vip: 192.168.9.20 is outside network.cidr 192.168.4.0/24" in text
    assert "hapx:haproxy.statsPort: must be between 1 and 65535, got 99999" in text
    assert "2 problem(s)" in text


def test_bad_secrets_fail_before_any_resource_without_their_values(dev_config):
    from hapx import keys

    bad = {"statsPassword": "short", "corosyncAuthkey": "bm90IGxvbmcgZW5vdWdo",
           "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}
    text = _refused(dev_config, secret_config=bad)
    assert "hapx:statsPassword: must be 12 to 128 letters, digits or" in text
    assert "hapx:corosyncAuthkey: decodes to 15 bytes; corosync needs 128 to 4096" in text
    assert "hapx:sshPrivateKey: is not an unencrypted OpenSSH private key (it does not parse)" in text
    assert not any(v in text for v in ("short", "bm90IGxvbmcgZW5vdWdo", "nope"))
    good = keys.password()
    text = _refused(dev_config, plain_config={"hapx:statsPassword": good})
    assert ("hapx:statsPassword: is stored in plain text: set it with "
            "`pulumi config set --secret hapx:statsPassword`") in text
    assert good not in text


def test_a_setting_under_a_misspelt_namespace_is_refused(dev_config):
    text = _refused(dev_config, plain_config={"hpax:statsPassword": "x", "libvirt:uri": "qemu:///system"})
    assert ("hpax:statsPassword: not read: hapx reads its settings from the `hapx:` namespace "
            "(did you mean hapx:statsPassword?)") in text
    assert "libvirt:uri" not in text  # a provider's own namespace


def test_a_local_base_image_must_exist(dev_config):
    cfg = dict(dev_config, baseImage="build/no-such-image.qcow2")
    assert "hapx:baseImage: 'build/no-such-image.qcow2' is not a readable file" in _refused(cfg)


def test_the_outputs_are_the_ones_listed_once(dev_graph):
    """The program exports exactly hapx.outputs.OUTPUTS, secret where the list says so, and the
    component declares a typed attribute for each (a program using it reads them by name)."""
    from components.cluster import HaproxyCluster
    from hapx.outputs import OUTPUTS, plain_outputs
    from hapx.settings import settings_from_dict
    from hapx.stackfile import load_stack_file

    settings = settings_from_dict(load_stack_file(str(PROJECT / "Pulumi.dev.yaml")))
    assert set(plain_outputs(settings)) == {o.name for o in OUTPUTS if o.from_settings}
    assert set(dev_graph.outputs) == {o.name for o in OUTPUTS}
    assert dev_graph.secret_outputs == {o.name for o in OUTPUTS if o.secret}
    assert {o.attr for o in OUTPUTS} <= set(HaproxyCluster.__annotations__)


def test_the_readme_outputs_table_is_the_list():
    """The README's Outputs table is hapx.outputs.OUTPUTS as `python -m hapx.outputs` prints it."""
    from hapx import outputs

    readme = (PROJECT / "README.md").read_text()
    start = readme.index("| output | holds |")
    assert readme[start:readme.index("\n\n", start) + 1] == outputs.markdown_table(), \
        "README's outputs table differs from hapx/outputs.py: paste `python -m hapx.outputs` into it"


def test_args_from_config_check_the_settings_and_a_given_secret_as_a_stack_does():
    """HaproxyClusterArgs.from_config, the library's way in: the stack's keys and checks; a secret
    given as a string meets its setting's rule, never echoed."""
    from components import HaproxyClusterArgs
    from hapx.model import SettingsError
    from hapx.stackfile import load_stack_file

    config = load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))
    assert str(HaproxyClusterArgs.from_config(config).settings.vip) == "192.168.4.20"
    with pytest.raises(SettingsError) as err:
        HaproxyClusterArgs.from_config({**config, "vip": "10.0.0.20"}, stats_password="short pass")
    message = str(err.value)
    assert "hapx:vip: 10.0.0.20 is outside network.cidr 192.168.4.0/24" in message
    assert "hapx:statsPassword: must be 12 to 128" in message and "short pass" not in message
