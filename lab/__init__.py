"""The hapx lab: the pair for real, in containers or VMs, inside a network namespace of its own.

Backends (lab/backend.py) make the nodes; lab/labnet.py holds what they share; lab/labclient.py
drives a running lab for the lab tests and the benchmarks; the programs are in lab/cli/ and
lab/<program> runs them. Standard library only (hapx.crm besides), so root's python3 runs it.
"""
