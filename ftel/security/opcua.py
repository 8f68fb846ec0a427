"""The gateway's OPC UA certificates: its application instance certificate (OPC 10000-6 6.2.2: RSA, SHA-256, the
application URI and host names in subjectAltName) and the server certificates it trusts.

Everything lives in one directory (the *pki*), laid out as OPC UA stacks lay it out, so an integrator finds it
where they expect it:

    own/cert.der   the gateway's certificate (give it to the server's administrator to trust)
    own/key.pem    its private key (mode 0600)
    trusted/       server certificates (or the CAs that issued them) the gateway accepts
    rejected/      server certificates the gateway refused, kept so that one can be trusted after checking it
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ftel.security.credentials import write_private
from ftel.security.errors import AuthError

DEFAULT_DAYS = 3 * 365
RSA_BITS = 2048  # every policy the gateway speaks (Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss)


def default_application_uri() -> str:
    return f"urn:{socket.gethostname()}:ftel:gateway"


@dataclass(frozen=True, slots=True)
class OpcUaPki:
    directory: Path

    @property
    def certificate(self) -> Path:
        return self.directory / "own" / "cert.der"

    @property
    def private_key(self) -> Path:
        return self.directory / "own" / "key.pem"

    @property
    def trusted(self) -> Path:
        return self.directory / "trusted"

    @property
    def rejected(self) -> Path:
        return self.directory / "rejected"

    def exists(self) -> bool:
        return self.certificate.exists() and self.private_key.exists()


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_application_certificate(
    pki: OpcUaPki,
    *,
    application_uri: str,
    hosts: tuple[str, ...],
    days: int = DEFAULT_DAYS,
    common_name: str = "ftel gateway",
    now: datetime.datetime | None = None,
) -> OpcUaPki:
    """Write a self-signed application instance certificate and its key under ``pki`` (replacing any)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ftel"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(application_uri), *map(_san, hosts)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(pki.private_key, key_pem.decode())
    pki.certificate.parent.mkdir(parents=True, exist_ok=True)
    pki.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    pki.trusted.mkdir(parents=True, exist_ok=True)
    pki.rejected.mkdir(parents=True, exist_ok=True)
    return pki


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate file, DER or PEM."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AuthError(f"cannot read the certificate {path}: {error.strerror}") from error
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise AuthError(f"{path} is not an X.509 certificate (DER or PEM): {error}") from error


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint OPC UA tools show (upper-case hex; no colons, which terminals may take for markup)."""
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER), usedforsecurity=False).hexdigest().upper()


def application_uri(certificate: x509.Certificate) -> str | None:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def describe(certificate: x509.Certificate) -> str:
    subject = certificate.subject.rfc4514_string()
    until = certificate.not_valid_after_utc.strftime("%Y-%m-%d")
    return f"{subject}, SHA-1 {thumbprint(certificate)}, valid until {until}"


def trusted_certificates(pki: OpcUaPki) -> list[x509.Certificate]:
    if not pki.trusted.is_dir():
        return []
    return [load_certificate(p) for p in sorted(pki.trusted.iterdir()) if p.suffix.lower() in (".der", ".pem", ".crt")]


def is_trusted(
    certificate: x509.Certificate, trusted: list[x509.Certificate], *, now: datetime.datetime | None = None
) -> bool:
    """Within its validity, and itself in ``trusted`` or issued (signed) by a certificate there."""
    now = now or datetime.datetime.now(datetime.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return False
    for anchor in trusted:
        if anchor == certificate:
            return True
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def reject(pki: OpcUaPki, certificate: x509.Certificate) -> Path:
    """Keep a refused server certificate under ``rejected/`` (so it can be trusted later); its path."""
    digest = thumbprint(certificate).lower()
    path = pki.rejected / f"{digest}.der"
    pki.rejected.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    return path


def trust(pki: OpcUaPki, path: Path) -> Path:
    """Add the certificate at ``path`` to ``trusted/`` (as DER, named by its thumbprint); its new path. A
    rejected one leaves ``rejected/``."""
    certificate = load_certificate(path)
    digest = thumbprint(certificate).lower()
    target = pki.trusted / f"{digest}.der"
    pki.trusted.mkdir(parents=True, exist_ok=True)
    target.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    if path.resolve().parent == pki.rejected.resolve():
        path.unlink()
    return target
