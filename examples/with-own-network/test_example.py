"""This example under Pulumi mocks, with hapx as pip installed it: the program's own network,
the pair on it (files rendered from the templates the package ships), and hapx's checks.
Run: `pip install -r requirements.txt pytest`, then `python -m pytest` here."""

from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest
from hapx.components import HaproxyClusterArgs
from hapx.components.testing import HapxMocks

from hapx.model import SettingsError

MAIN = Path(__file__).with_name("__main__.py")


def run_example() -> tuple[HapxMocks, dict]:
    """Run __main__.py under mocks; the mocks (what it registered) and the cluster's outputs."""
    mocks = HapxMocks()
    pulumi.runtime.set_mocks(mocks, project="hapx-with-own-network", stack="test", preview=False)
    outputs: dict = {}

    @pulumi.runtime.test
    def run():
        cluster = runpy.run_path(str(MAIN), run_name="__pulumi_main__")["cluster"]
        return pulumi.Output.all(api=cluster.api_endpoint, ips=cluster.node_ips).apply(outputs.update)

    run()
    return mocks, outputs


def test_the_pair_lands_on_the_programs_own_network():
    mocks, outputs = run_example()
    assert mocks.resources["lb-net"].typ == "libvirt:index/network:Network"
    assert outputs == {"api": "10.20.0.20:6443", "ips": {"lb-1": "10.20.0.21", "lb-2": "10.20.0.22"}}
    for node in ("lb-1", "lb-2"):
        nic = mocks.resources[f"{node}-domain"].inputs["networkInterfaces"][0]
        assert nic["networkName"] == "lb-net"
    configure = [r.inputs["create"] for name, r in mocks.resources.items() if "configure" in name]
    assert configure and all("crm_ok configure load update" in script for script in configure)


def test_a_bad_value_is_refused_before_any_resource():
    with pytest.raises(SettingsError, match=r"hapx:vip: 10\.99\.0\.20 is outside network\.cidr 10\.20\.0\.0/24"):
        HaproxyClusterArgs.from_config({
            "vip": "10.99.0.20",
            "network": {"mode": "existing", "name": "lb-net", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1"},
            "nodes": [{"name": "lb-1", "ip": "10.20.0.21"}, {"name": "lb-2", "ip": "10.20.0.22"}],
            "masters": [{"name": "cp-1", "address": "10.30.0.11", "port": 6443}],
        })
