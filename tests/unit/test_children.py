"""ftel/children.py: children of a command, as the load test and `ftel run` start them."""

from __future__ import annotations

import os
import subprocess

from ftel.children import spawn


def test_a_child_spawned_nice_runs_at_that_lower_priority_under_its_own_pid() -> None:
    here = os.getpriority(os.PRIO_PROCESS, 0)
    child = spawn(["--help"], stdout=subprocess.DEVNULL, nice=7)
    seen: set[int] = set()
    try:
        # coreutils' nice lowers its own priority, then execs the interpreter under the same pid.
        while child.poll() is None and here + 7 not in seen:
            try:
                seen.add(os.getpriority(os.PRIO_PROCESS, child.pid))
            except ProcessLookupError:
                break
    finally:
        assert child.wait(30) == 0
    assert here + 7 in seen
