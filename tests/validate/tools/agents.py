"""Where the OCF resource agents are: the packaged ones the crm configuration and the simulation
use, and hapx's own (agents/), which tests run for real (test_agent, test_health_agent)."""

from __future__ import annotations

from tests.conftest import PROJECT

# Resource agents the crm configuration and the simulation use (package resource-agents).
OCF_AGENTS = ("/usr/lib/ocf/resource.d/heartbeat/Dummy",)
# hapx's own agents (the install-agent step puts them under /usr/lib/ocf/resource.d/hapx/).
HAPX_AGENTS = PROJECT / "agents"
