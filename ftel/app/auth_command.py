"""`ftel auth init | show | tls | opcua`: the installation's identities, what one needs to connect, throw-away TLS,
the gateway's OPC UA certificates."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterable
from pathlib import Path

from ftel.errors import CliError
from ftel.security.credentials import (
    Credentials,
    credential_env,
    identity_settings,
    load_credentials,
    without_credentials,
    write_private,
)
from ftel.security.gateways import plant_gateways
from ftel.security.identities import Identity, Role, grants, roster
from ftel.security.opcua import DEFAULT_DAYS as OPCUA_DAYS
from ftel.security.opcua import (
    OpcUaPki,
    default_application_uri,
    describe,
    load_certificate,
    make_application_certificate,
    trust,
)
from ftel.security.provision import AuthFiles, Provisioned, provision
from ftel.security.tls import DEFAULT_DAYS, DEFAULT_HOSTS, make_throwaway_pki
from ftel.settings import Settings


def _summary(identities: list[Identity]) -> str:
    by_role: dict[Role, list[Identity]] = {}
    for identity in identities:
        by_role.setdefault(identity.role, []).append(identity)
    parts = []
    for role, members in by_role.items():
        names = ", ".join(i.describe() if role is Role.GATEWAY else i.name for i in members[:6])
        more = f" and {len(members) - 6} more" if len(members) > 6 else ""
        parts.append(f"  {role.value:12} {names}{more}")
    return "\n".join(parts)


def _provision(settings: Settings, identities: Iterable[Identity]) -> Provisioned:
    """Write the files; a running local broker takes them in at once."""
    from ftel.stack.services import Service, reload_mosquitto

    provisioned = provision(AuthFiles(settings.credentials_file), identities)
    if provisioned.broker_changed:
        reload_mosquitto(Service("mosquitto", settings.stack.dir / "mosquitto", settings.mqtt.port))
    return provisioned


def _init(args: argparse.Namespace, settings: Settings) -> int:
    files = AuthFiles(settings.credentials_file)
    workers = args.ingest_workers or settings.auth.ingest_workers
    provisioned = _provision(settings, roster(plant_gateways(settings, args.plant), workers))
    print(f"credentials  {files.credentials.resolve()}  (mode 0600: keep it secret, never commit it)")
    print(f"mosquitto    {files.mosquitto_passwords.resolve()}")
    print(f"             {files.mosquitto_acl.resolve()}")
    print("identities:")
    print(_summary(provisioned.credentials.all_identities()))
    print("connect as one of them: ftel auth show NAME")
    return 0


def _add(args: argparse.Namespace, settings: Settings) -> int:
    identity = Identity(args.name, Role(args.role), args.site, args.workshop)
    _provision(settings, [identity])
    print(
        f"{identity.describe()} is in {settings.credentials_file.resolve()}; connect as it: ftel auth show {args.name}"
    )
    return 0


def _credentials(settings: Settings) -> Credentials:
    path = settings.credentials_file
    if not path.exists():
        raise CliError(f"no credentials file at {path}: run `ftel auth init` (or `ftel stack up`) first")
    return load_credentials(path)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    credentials = _credentials(settings)
    if args.identity not in credentials.identities:
        known = ", ".join(sorted(credentials.identities))
        raise CliError(f"no identity {args.identity!r} in {settings.credentials_file} (known: {known})")
    source = str(settings.credentials_file)
    env = credential_env(identity_settings(without_credentials(settings), credentials, args.identity, source=source))
    if args.mqtt_only:
        env = {k: v for k, v in env.items() if k.startswith("FTEL_MQTT__")}
    if args.env_file:
        write_private(args.env_file, "".join(f"{k}={v}\n" for k, v in env.items()))
        print(f"wrote {args.env_file} (mode 0600)")
        return 0
    identity = credentials.identity(args.identity)
    g = grants(identity)
    print(f"identity     {identity.describe()}")
    print(f"MQTT         {settings.mqtt.host}:{settings.mqtt.port}, username {identity.name} (also the client id)")
    print(f"  publish    {', '.join(g.publish) or 'nothing'}")
    print(f"  receive    {', '.join(g.receive) or 'nothing'}")
    if identity.influx_user is None:
        print("InfluxDB     none (this role never talks to InfluxDB)")
    else:
        print(f"InfluxDB     {settings.influx.url}, user {identity.influx_user.value}")
    print("environment:")
    for key, value in env.items():
        print(f"  {key}={value}")
    return 0


def _tls(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.out or settings.stack.dir / "tls"
    files = make_throwaway_pki(directory, hosts=tuple(args.host or DEFAULT_HOSTS), days=args.days)
    print(f"CA (trust it)   {files.ca.resolve()}")
    print(f"server          {files.cert.resolve()}, key {files.key.resolve()} (mode 0600)")
    print("the local stack serves MQTT over TLS and InfluxDB over HTTPS with them when started with:")
    print(f"  FTEL_STACK__TLS=true FTEL_INFLUX__URL=https://127.0.0.1:{_influx_port(settings)} ftel stack up")
    print("clients then connect with:")
    print(
        f"  FTEL_MQTT__TLS=true FTEL_MQTT__PORT={settings.stack.mqtt_tls_port} FTEL_MQTT__CA_FILE={files.ca.resolve()}"
    )
    print(f"  FTEL_INFLUX__URL=https://127.0.0.1:{_influx_port(settings)} FTEL_INFLUX__CA_FILE={files.ca.resolve()}")
    return 0


def _opcua_pki(args: argparse.Namespace, settings: Settings) -> OpcUaPki:
    return OpcUaPki(args.pki or settings.stack.dir / "opcua")


def _opcua_init(args: argparse.Namespace, settings: Settings) -> int:
    pki = _opcua_pki(args, settings)
    if pki.exists() and not args.replace:
        print(f"kept the certificate in {pki.directory.resolve()} (--replace makes a new one)")
    else:
        hosts = tuple(args.host or (socket.gethostname(), "localhost"))
        uri = args.application_uri or default_application_uri()
        make_application_certificate(pki, application_uri=uri, hosts=hosts, days=args.days)
    own = load_certificate(pki.certificate)
    print(f"certificate  {pki.certificate.resolve()}  ({describe(own)})")
    print(f"private key  {pki.private_key.resolve()}  (mode 0600: never commit it)")
    print(f"trusted      {pki.trusted.resolve()}/  (server certificates the gateway accepts)")
    print(f"rejected     {pki.rejected.resolve()}/  (refused ones; `ftel auth opcua trust FILE` after checking)")
    print("give the certificate to each server's administrator to trust, and set in the gateway file:")
    print(f"  security: {{policy: Basic256Sha256, mode: SignAndEncrypt, pki: {pki.directory.resolve()}}}")
    return 0


def _opcua_trust(args: argparse.Namespace, settings: Settings) -> int:
    pki = _opcua_pki(args, settings)
    certificate = load_certificate(args.certificate)
    target = trust(pki, args.certificate)
    print(f"trusted {describe(certificate)}")
    print(f"  as {target.resolve()}")
    return 0


def _influx_port(settings: Settings) -> int:
    from urllib.parse import urlparse

    return urlparse(settings.influx.url).port or 8086


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "auth",
        help="identities and credentials: init, show one, throw-away TLS",
        description="Every process connects as an identity with its own password and only the topics and "
        "InfluxDB access of its role (docs/security.md).",
    )
    sub = parser.add_subparsers(dest="auth_command", metavar="ACTION", required=True)

    init = sub.add_parser(
        "init",
        help="write the credentials file and Mosquitto's password and ACL files",
        description="Creates (or completes) the credentials file (FTEL_AUTH__CREDENTIALS_FILE, default "
        "<FTEL_STACK__DIR>/auth/credentials.yaml) with a random password for each gateway of the plant, "
        "ingest-1 … ingest-N, alerts, supervisor, maintenance and admin, and the InfluxDB users; writes "
        "Mosquitto's password and ACL files beside it. Passwords already there are kept; a running local "
        "broker reloads the files.",
    )
    init.add_argument("--plant", type=Path, help="plant YAML whose gateways get identities (default: the settings')")
    init.add_argument("--ingest-workers", type=int, help="identities ingest-1 … ingest-N (FTEL_AUTH__INGEST_WORKERS)")
    init.set_defaults(handler=_init)

    add = sub.add_parser(
        "add",
        help="add one identity (or bind a gateway anew), e.g. a second alert worker or a person's own login",
        description="Adds NAME with ROLE to the credentials file with a new password (an existing one keeps its "
        "password; a gateway gets the site and workshop given), and rewrites Mosquitto's files.",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--site", help="a gateway's or an operator's site")
    add.add_argument("--workshop", help="a gateway's workshop, or an operator's workshops (comma-separated)")
    add.set_defaults(handler=_add)

    show = sub.add_parser(
        "show",
        help="what one needs to connect as an identity (prints its password)",
        description="Prints the identity's role, what it may publish and receive, and the FTEL_* variables "
        "with its MQTT and InfluxDB credentials.",
    )
    show.add_argument("identity", metavar="IDENTITY")
    show.add_argument("--env-file", type=Path, help="write only the FTEL_* variables to this file (mode 0600)")
    show.add_argument(
        "--mqtt-only",
        action="store_true",
        help="only the MQTT credentials (where InfluxDB has users of its own, e.g. docker compose)",
    )
    show.set_defaults(handler=_show)

    tls = sub.add_parser(
        "tls",
        help="make a throw-away CA and a server certificate for the local stack",
        description="Writes ca.pem, server.pem and server-key.pem (for 127.0.0.1 and localhost by default); "
        "the CA's key is never written. For a lab or a single host; a plant's own PKI is better.",
    )
    tls.add_argument("--out", type=Path, help="directory (default <FTEL_STACK__DIR>/tls, where the stack looks)")
    tls.add_argument("--host", action="append", help="a name or address the certificate is for (repeatable)")
    tls.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})")
    tls.set_defaults(handler=_tls)

    opcua = sub.add_parser(
        "opcua",
        help="the gateway's OPC UA application certificate and the server certificates it trusts",
        description="OPC UA security (docs/gateway.md, 'OPC UA security'): a directory with the gateway's "
        "application instance certificate (own/), the server certificates it trusts (trusted/) and those it "
        "refused (rejected/).",
    )
    opcua_sub = opcua.add_subparsers(dest="opcua_command", metavar="ACTION", required=True)
    opcua_init = opcua_sub.add_parser(
        "init",
        help="make the gateway's application instance certificate (RSA 2048, SHA-256, self-signed)",
        description="Writes own/cert.der and own/key.pem (mode 0600) and makes trusted/ and rejected/; an existing "
        "certificate is kept unless --replace.",
    )
    opcua_init.add_argument("--pki", type=Path, help="directory (default <FTEL_STACK__DIR>/opcua)")
    opcua_init.add_argument("--application-uri", help="the gateway's application URI (default urn:<host>:ftel:gateway)")
    opcua_init.add_argument("--host", action="append", help="a host name or address of the gateway (repeatable)")
    opcua_init.add_argument("--days", type=int, default=OPCUA_DAYS, help=f"validity (default {OPCUA_DAYS})")
    opcua_init.add_argument("--replace", action="store_true", help="make a new certificate even if one exists")
    opcua_init.set_defaults(handler=_opcua_init)
    opcua_trust = opcua_sub.add_parser(
        "trust",
        help="trust a server certificate (or the CA that issued it), e.g. one the gateway refused",
        description="Copies the certificate (DER or PEM) into trusted/; one from rejected/ leaves rejected/. Compare "
        "its thumbprint with the one the server shows for itself first.",
    )
    opcua_trust.add_argument("certificate", type=Path, metavar="FILE")
    opcua_trust.add_argument("--pki", type=Path, help="directory (default <FTEL_STACK__DIR>/opcua)")
    opcua_trust.set_defaults(handler=_opcua_trust)
