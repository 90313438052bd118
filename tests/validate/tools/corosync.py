"""corosync 3.1: `corosync -t` on the rendered corosync.conf as each node, and a structural
reading of the file for tests that look inside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.validate.tools.netns import netns
from tests.validate.tools.procs import CheckFailed, ToolResult, private_mounts, run


def check_corosync_conf(path: Path, local_address: str) -> ToolResult:
    """`corosync -t -c FILE` accepts the file, run as the node with `local_address`: in a
    throwaway network namespace holding that address (corosync insists that one nodelist
    address is local), with corosync's log directory on a private tmpfs."""
    with netns(local_address) as ns:
        result = run(private_mounts(["ip", "netns", "exec", ns, "corosync", "-t", "-c", str(path)],
                                    tmpfs=["/var/log/corosync"]))
    if result.returncode != 0:
        raise CheckFailed(f"corosync -t rejected {path} (as {local_address}):\n{result.describe()}")
    return result


@dataclass
class CorosyncSection:
    """One `name { ... }` block of corosync.conf: its key/value lines (keys may repeat) and sub-blocks."""

    name: str
    values: dict[str, list[str]] = field(default_factory=dict)
    sections: list[CorosyncSection] = field(default_factory=list)

    def value(self, key: str) -> Optional[str]:
        values = self.values.get(key)
        return values[-1] if values else None

    def section(self, name: str) -> CorosyncSection:
        found = [s for s in self.sections if s.name == name]
        if len(found) != 1:
            raise CheckFailed(f"corosync.conf: expected one {name} {{}} block in {self.name}, found {len(found)}")
        return found[0]

    def all(self, name: str) -> list[CorosyncSection]:
        return [s for s in self.sections if s.name == name]


def parse_corosync_conf(text: str) -> CorosyncSection:
    """A structural reading of corosync.conf (the syntax itself is corosync -t's job)."""
    root = CorosyncSection("<top>")
    stack = [root]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            section = CorosyncSection(line[:-1].strip())
            stack[-1].sections.append(section)
            stack.append(section)
        elif line == "}":
            if len(stack) == 1:
                raise CheckFailed(f"corosync.conf:{lineno}: unbalanced '}}'")
            stack.pop()
        elif ":" in line:
            key, value = line.split(":", 1)
            stack[-1].values.setdefault(key.strip(), []).append(value.strip())
        else:
            raise CheckFailed(f"corosync.conf:{lineno}: cannot read {raw!r}")
    if len(stack) != 1:
        raise CheckFailed(f"corosync.conf: block {stack[-1].name!r} is not closed")
    return root
