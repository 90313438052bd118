"""Scripts that run on the nodes, not here: shipped as text (over SSH on stdin), never imported.

Standard library only: they run under the nodes' python3.
"""
