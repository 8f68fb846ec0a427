"""The Machinery example nodeset is shipped in tests/reference/ as published: taken only while its SHA-256 is the
pinned one (tests/reference/README.md records where it comes from)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.reference import nodesets

EXAMPLES = "Opc.Ua.Machinery.Examples.NodeSet2.xml"


def test_the_shipped_example_is_the_published_file() -> None:
    path = nodesets.nodeset(EXAMPLES)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == nodesets.SHIPPED[EXAMPLES]
    assert len(data) == 51_833
    assert b"OPC Foundation MIT License 1.00" in data[:2000]  # its licence travels with it


def test_a_shipped_file_that_differs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / EXAMPLES
    changed.write_bytes(nodesets.nodeset(EXAMPLES).read_bytes().replace(b"\n", b"\r\n"))
    monkeypatch.setattr(nodesets, "HERE", tmp_path)
    with pytest.raises(nodesets.ReferenceFetchError, match="is not the pinned"):
        nodesets.nodeset(EXAMPLES)
