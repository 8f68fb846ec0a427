"""free_port hands a port to one process only: parallel stacks (the fault scenarios start eight at once) each
get their own, although every one of them asks the kernel for a free port before its services bind it."""

from __future__ import annotations

import subprocess
import sys

from ftel.stack.services import HANDED_OUT_KEEP_S, free_port, recent_ports


def test_parallel_processes_are_never_handed_the_same_port() -> None:
    take = "from ftel.stack.services import free_port; print(*(free_port() for _ in range(200)))"
    processes = [subprocess.Popen([sys.executable, "-c", take], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ports = [int(port) for process in processes for port in process.communicate()[0].split()]
    assert all(process.returncode == 0 for process in processes)
    ports.append(free_port())
    assert len(ports) == 801
    assert len(set(ports)) == len(ports)


def test_the_registry_keeps_recent_well_formed_lines_and_skips_the_rest() -> None:
    now = 1_000_000.0
    old = now - HANDED_OUT_KEEP_S - 1
    registry = f"40001 {now - 5}\na b\n40002 {old}\n\n40003\n40004 12x\n40005 {now}\n"
    assert recent_ports(registry, now) == {40001: now - 5, 40005: now}
