"""The lab's programs. Each lab/<program> is a shim that runs `python -m lab.cli.<module>` from
the project root (where `python -m` finds the lab package); run() goes back to the caller's
directory first, so relative paths on the command line mean what the caller meant."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

CALLER_DIR = "HAPX_LAB_CALLER_DIR"  # set by the shims: the directory they were called from


def run(main: Callable[[], int]) -> NoReturn:
    """Exit with main()'s code, run in the directory the shim was called from."""
    caller = os.environ.pop(CALLER_DIR, None)
    if caller:
        os.chdir(caller)
    sys.exit(main())
