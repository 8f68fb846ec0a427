"""OPC UA security for one connection: the endpoint that offers the configured policy and mode, the server's
certificate checked against the gateway's trust list (an unknown one is refused, kept under ``rejected/``, and
the error says how to trust it), the gateway's application instance certificate, and the user (anonymous, user
name and password, or an X.509 user certificate). Secrets come from the environment or a file, never from the
gateway file itself.
"""

from __future__ import annotations

import os

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509

from ftel.security.errors import AuthError
from ftel.security.opcua import (
    OpcUaPki,
    application_uri,
    describe,
    is_trusted,
    load_certificate,
    reject,
    trusted_certificates,
)
from gateway.config import OpcUaSecurity, OpcUaUser, Secret, SecurityMode, SecurityPolicy
from gateway.drivers.errors import DriverError, SourceError

POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES128_SHA256_RSAOAEP: security_policies.SecurityPolicyAes128Sha256RsaOaep,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {
    SecurityMode.NONE: ua.MessageSecurityMode.None_,
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


class UntrustedServerError(SourceError):
    """The server presented a certificate that is not in the gateway's trust list."""


def read_secret(secret: Secret, what: str) -> str:
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise DriverError(f"{what}: the environment variable {secret.env} is not set")
        return value
    assert secret.file is not None  # the configuration checked it
    try:
        return secret.file.read_text().strip("\r\n")
    except OSError as error:
        raise DriverError(f"{what}: cannot read {secret.file}: {error.strerror}") from error


def _policy_name(uri: str) -> str:
    return uri.rsplit("#", 1)[-1]


def offered(endpoints: list[ua.EndpointDescription]) -> str:
    """What the server offers, as a person compares it with the configuration."""
    return ", ".join(sorted({f"{_policy_name(e.SecurityPolicyUri)}/{e.SecurityMode.name}" for e in endpoints}))


def choose_endpoint(
    endpoints: list[ua.EndpointDescription], security: OpcUaSecurity, where: str
) -> ua.EndpointDescription:
    uri = POLICIES[security.policy].URI
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == uri and endpoint.SecurityMode == MODES[security.mode]:
            return endpoint
    raise SourceError(
        f"{where} offers no {security.policy.value}/{security.mode.value} endpoint (it offers {offered(endpoints)}): "
        "set the driver's security.policy and security.mode to one of those"
    )


def server_certificate(endpoint: ua.EndpointDescription, where: str) -> x509.Certificate:
    if not endpoint.ServerCertificate:
        raise SourceError(f"{where} offers {_policy_name(endpoint.SecurityPolicyUri)} without a certificate")
    try:
        # The field may hold a chain: the server's own certificate comes first.
        return x509.load_der_x509_certificate(_first_der(endpoint.ServerCertificate))
    except ValueError as error:
        raise SourceError(f"{where} sent a certificate that does not parse: {error}") from error


def _first_der(data: bytes) -> bytes:
    """The first DER structure of a chain (a SEQUENCE: its length is in the header)."""
    if len(data) < 4 or data[0] != 0x30:
        return data
    size = data[1]
    if size < 0x80:
        return data[: 2 + size]
    count = size & 0x7F
    return data[: 2 + count + int.from_bytes(data[2 : 2 + count], "big")]


def check_trusted(pki: OpcUaPki, certificate: x509.Certificate, where: str) -> None:
    try:
        trusted = trusted_certificates(pki)
    except AuthError as error:
        raise DriverError(
            f"{where}: the trust list {pki.trusted} holds a file that is not a certificate: {error}"
        ) from error
    if is_trusted(certificate, trusted):
        return
    kept = reject(pki, certificate)
    raise UntrustedServerError(
        f"{where} presented a certificate that the gateway does not trust ({describe(certificate)}), so it was "
        f"refused and kept as {kept}. If that thumbprint is the one the server shows for itself, trust it: "
        f"`ftel auth opcua trust {kept} --pki {pki.directory}` (or copy it into {pki.trusted}/)"
    )


async def apply_user(client: Client, user: OpcUaUser | None, where: str) -> None:
    if user is None:
        return
    if user.username is not None:
        assert user.password is not None
        client.set_user(user.username)
        client.set_password(read_secret(user.password, f"{where}: the password of {user.username}"))
        return
    assert user.certificate is not None
    assert user.private_key is not None
    password = (
        read_secret(user.private_key_password, f"{where}: the user key's password")
        if user.private_key_password
        else None
    )
    try:
        await client.load_client_certificate(str(user.certificate))
        await client.load_private_key(user.private_key, password)
    except (OSError, ValueError, TypeError) as error:
        raise DriverError(f"{where}: cannot load the user certificate {user.certificate}: {error}") from error


async def secure(client: Client, security: OpcUaSecurity, where: str) -> None:
    """Set up ``client`` (not yet connected) as ``security`` says; ask the server for its endpoints first when
    the channel is secured, to check its certificate before anything is signed or encrypted for it."""
    if security.policy is SecurityPolicy.NONE:
        await apply_user(client, security.user, where)
        return
    assert security.pki is not None
    pki = OpcUaPki(security.pki)
    if not pki.exists():
        raise DriverError(
            f"{where}: no application instance certificate in {pki.directory}: make one with "
            f"`ftel auth opcua init --pki {pki.directory}`"
        )
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except (ua.UaError, OSError, TimeoutError) as error:
        raise SourceError(f"cannot ask {where} for its endpoints: {error}") from error
    endpoint = choose_endpoint(endpoints, security, where)
    certificate = server_certificate(endpoint, where)
    check_trusted(pki, certificate, where)
    own = load_certificate(pki.certificate)
    client.application_uri = application_uri(own) or client.application_uri
    try:
        await client.set_security(
            POLICIES[security.policy],
            certificate=str(pki.certificate),
            private_key=str(pki.private_key),
            server_certificate=_first_der(endpoint.ServerCertificate),
            mode=MODES[security.mode],
        )
    except (ua.UaError, ValueError, TypeError) as error:
        raise DriverError(f"{where}: cannot use the certificate in {pki.directory}: {error}") from error
    await apply_user(client, security.user, where)
