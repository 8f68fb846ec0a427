"""free_port hands a port to one process only: parallel stacks (the fault scenarios start eight at once) each
get their own, although every one of them asks the kernel for a free port before its services bind it."""

from __future__ import annotations

import subprocess
import sys

from ftel.stack.services import free_port


def test_parallel_processes_are_never_handed_the_same_port() -> None:
    take = "from ftel.stack.services import free_port; print(*(free_port() for _ in range(200)))"
    processes = [subprocess.Popen([sys.executable, "-c", take], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ports = [int(port) for process in processes for port in process.communicate()[0].split()]
    assert all(process.returncode == 0 for process in processes)
    ports.append(free_port())
    assert len(ports) == 801
    assert len(set(ports)) == len(ports)
