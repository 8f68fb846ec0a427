"""OPC UA for Machinery as shipped, through the whole pipeline: a server built from the OPC Foundation's DI, IA
and Machinery nodesets and its Machinery example (Opc.Ua.Machinery.Examples.NodeSet2.xml, imported as published),
with six machines instantiated from the example's ``ExampleMachineType`` (building blocks named in the example's
namespace, added by HasAddIn) beside the example's own ``ExampleMachine01``, and vendor variables with
server-assigned numeric NodeIds (tests/opcua_machinery.py). One model in the gateway file serves all six machines:
building blocks found by type, vendor variables by browse path, one machine found by its serial number; the
example's machine, of the same type, is read by no one and drafted apart by discover. Machines whose browse names
are the vendor's, under Objects/Machines, DI's DeviceSet or both, are found by their identification (or, under
DeviceSet, by that name), and an identification that several machines share is refused.

The test drives the machines through a script and records when it wrote each change (the truth). The gateway
(`ftel gateway --config`, a real process) reads them on the wall clock, through Mosquitto and an ingest worker
into InfluxDB; what is stored is compared with the truth:
- the sequence of states and DOWN reasons of every machine exactly;
- the time of every change within one poll interval of the truth (docs/gateway.md, *Time*: a change is seen at
  the first poll after it; a subscription only makes it sooner);
- the units counted exactly, across a counter that wraps (one machine's starts 3 below 2^32).
The same runs with security on: Basic256Sha256 / SignAndEncrypt, a user with a password from the environment, the
server's certificate in the gateway's trust list. And an unknown server certificate is refused, with the message
that says how to trust it; trusted that way, the same probe succeeds.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua import ua

from ftel.contract.states import MachineState
from ftel.security.identities import Role
from ftel.security.opcua import OpcUaPki, make_application_certificate, trust
from ftel.stack import free_port
from ftel.storage.query import InfluxQuery
from gateway.config import parse_gateway_config
from gateway.drivers.build import source_for
from gateway.drivers.errors import SourceError
from tests.opcua_machinery import (
    EXAMPLE_MACHINE,
    MANUFACTURER,
    VENDOR_URI,
    Change,
    MachineryServer,
    Placement,
    SecurityOptions,
)
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration

MACHINES = [f"KNIT-V{i:03d}" for i in range(1, 7)]
BY_SERIAL = {"KNIT-V006": "SN-4716"}  # found by its identification, not its browse name
POLL_S = 1.0
STEP_S = 4.0  # how long each scripted state lasts: several polls
PASSWORD_ENV = "KNIT_OPCUA_PASSWORD"
WRAP_START = 2**32 - 3
# How each of our states shows on a Machinery machine: (MachineryItemState, MachineryOperationMode, fault code).
SHOWN = {
    "RUNNING": ("Executing", "Processing", 0),
    "IDLE": ("NotExecuting", "Processing", 0),
    "SETUP": ("NotExecuting", "Setup", 0),
    "MAINTENANCE": ("OutOfService", "Maintenance", 0),
    "yarn_break": ("OutOfService", "Processing", 101),
    "needle_break": ("OutOfService", "Processing", 102),
}
# Each machine's script (after the first state, IDLE, which every machine shows when the gateway starts).
SCRIPTS = [
    ["RUNNING", "yarn_break", "RUNNING", "SETUP", "RUNNING", "IDLE"],
    ["RUNNING", "needle_break", "IDLE", "RUNNING", "MAINTENANCE", "IDLE"],
    ["SETUP", "RUNNING", "yarn_break", "needle_break", "RUNNING", "IDLE"],
    ["RUNNING", "IDLE", "RUNNING", "yarn_break", "IDLE", "RUNNING"],
    ["MAINTENANCE", "IDLE", "RUNNING", "SETUP", "RUNNING", "needle_break"],
    ["RUNNING", "SETUP", "RUNNING", "IDLE", "RUNNING", "MAINTENANCE"],
]
UNITS_PER_RUN = 7  # pieces made during each RUNNING step


def model_yaml() -> str:
    return f"""
  Example knitting machine:
    type: knitting
    rated_speed: 1.2
    speed_unit: m/s
    service_interval_h: 200
    opcua:
      machinery: true
      namespaces: {{v: "{VENDOR_URI}"}}
      signals:
        fault_code: {{path: "v:Alarm/v:Code"}}
        units: {{path: "v:Counters/v:Pieces"}}
        speed: {{path: ["nsu={VENDOR_URI};CarriageSpeed"], min: 0, max: 2}}
    faults:
      codes: {{101: yarn_break, 102: needle_break}}
"""


def gateway_yaml(
    workshop: str, gateway_id: str, endpoint: str, security: str, located: dict[str, str] | None = None
) -> str:
    """The gateway file for MACHINES, or for the machines ``located`` gives, each with how its driver finds it."""
    located = located or {
        m: f"identification: {{SerialNumber: {BY_SERIAL[m]}}}" if m in BY_SERIAL else f"browse_name: {m}"
        for m in MACHINES
    }
    machines = []
    for machine, where in located.items():
        machines.append(
            f"  - id: {machine}\n    model: Example knitting machine\n    driver: {{kind: opcua, endpoint: "
            f'"{endpoint}", {where}, poll_interval_s: {POLL_S}, timeout_s: {2 * POLL_S}, offline_after: 2'
            f"{security}}}\n"
        )
    return (
        f"workshop: {workshop}\ngateway_id: {gateway_id}\n"
        "timing: {window_s: 5, telemetry_interval_s: 5, heartbeat_interval_s: 5}\n"
        f"models:{model_yaml()}machines:\n{''.join(machines)}"
    )


@dataclass
class Pki:
    gateway: OpcUaPki
    server: OpcUaPki


def make_pkis(root: Path, *, trusted: bool) -> Pki:
    gateway = make_application_certificate(
        OpcUaPki(root / "gateway-pki"), application_uri="urn:test:ftel:gateway", hosts=("127.0.0.1",)
    )
    server = make_application_certificate(
        OpcUaPki(root / "server-pki"),
        application_uri="urn:freeopcua:python:server",
        hosts=("127.0.0.1",),
        common_name="vendor line controller",
    )
    if trusted:
        trust(gateway, server.certificate)
    return Pki(gateway, server)


def secured_server(port: int, pki: Pki, password: str) -> MachineryServer:
    options = SecurityOptions(
        certificate=pki.server.certificate,
        private_key=pki.server.private_key,
        policies=[ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
        users={"knit-gateway": password},
    )
    return MachineryServer(port, MACHINES, security=options)


def security_yaml(pki: Pki) -> str:
    return (
        f", security: {{policy: Basic256Sha256, mode: SignAndEncrypt, pki: {pki.gateway.directory}, "
        f"user: {{username: knit-gateway, password: {{env: {PASSWORD_ENV}}}}}}}"
    )


@pytest.fixture
def servers() -> Iterator[list[MachineryServer]]:
    started: list[MachineryServer] = []
    yield started
    for server in started:
        server.stop()


# -- the whole pipeline -----------------------------------------------------------------------------------------


def drive(server: MachineryServer) -> dict[str, list[tuple[str, Change]]]:
    """Play every machine's script, STEP_S per state; what each machine was told, with its record."""
    truth: dict[str, list[tuple[str, Change]]] = {m: [] for m in MACHINES}
    units = {m: WRAP_START if i == 0 else 0 for i, m in enumerate(MACHINES)}
    start = time.monotonic()
    for step in range(len(SCRIPTS[0])):
        # The script's own clock: each state is held for STEP_S (this paces the machines; nothing is awaited).
        time.sleep(max(0.0, start + step * STEP_S - time.monotonic()))
        for machine, script in zip(MACHINES, SCRIPTS, strict=True):
            what = script[step]
            item, mode, fault = SHOWN[what]
            if what == "RUNNING":
                units[machine] = (units[machine] + UNITS_PER_RUN) % 2**32
            change = server.set(machine, item=item, mode=mode, fault_code=fault, units=units[machine], speed=0.9)
            truth[machine].append((what, change))
    time.sleep(max(0.0, start + len(SCRIPTS[0]) * STEP_S - time.monotonic()))
    return truth


def stored_changes(query: InfluxQuery, machine: str, since_ms: int) -> list[tuple[int, str, str | None]]:
    rows = query.rows(
        f'SELECT "state", "reason" FROM machine_state WHERE machine_id = \'{machine}\' AND time >= {since_ms}ms'
    )
    return [(int(r["time"]), r["state"], r.get("reason") or None) for r in rows]


def expected_states(script: list[tuple[str, Change]]) -> list[tuple[str, str | None, float]]:
    out: list[tuple[str, str | None, float]] = []
    for what, change in script:
        state, reason = (MachineState.DOWN.value, what) if what in ("yarn_break", "needle_break") else (what, None)
        if not out or out[-1][:2] != (state, reason):
            out.append((state, reason, change.at_s))
    return out


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(none)"


def wait_every_machine_read(query: InfluxQuery, root: Path) -> None:
    def every_machine_read() -> bool:
        # Telemetry follows a machine's first reading (its first state is re-stated by the next birth only).
        rows = query.rows('SHOW TAG VALUES FROM "telemetry" WITH KEY = "machine_id"')
        return {r["value"] for r in rows} == set(MACHINES)

    try:
        wait_until(every_machine_read, timeout_s=90, what="every machine read (its telemetry in InfluxDB)")
    except AssertionError:
        raise AssertionError(f"not every machine read; gateway log: {log_tail(root / 'gateway.log')}") from None


def wait_units(query: InfluxQuery, root: Path) -> None:
    expected = {m: UNITS_PER_RUN * SCRIPTS[i].count("RUNNING") for i, m in enumerate(MACHINES)}
    seen: dict[str, int] = {}

    def units_stored() -> bool:
        # Every window of this test's own database (the first began before the gateway did).
        rows = query.rows("SELECT sum(units) AS units FROM state_time GROUP BY machine_id")
        seen.clear()
        seen.update({r["machine_id"]: int(r["units"] or 0) for r in rows})
        return seen == expected

    try:
        wait_until(units_stored, timeout_s=60, what="units in InfluxDB", every_s=1)
    except AssertionError:
        log = log_tail(root / "gateway.log")
        raise AssertionError(f"units stored {seen}, expected {expected}; gateway log: {log}") from None


def change_errors(query: InfluxQuery, truth: dict[str, list[tuple[str, Change]]], drive_ms: int) -> list[str]:
    """Every machine's stored changes equal to the truth's, each within one poll interval of it."""
    errors: list[str] = []
    worst = 0.0
    for machine in MACHINES:
        stored = stored_changes(query, machine, drive_ms - int(POLL_S * 1000))
        if stored and stored[0][0] < drive_ms and stored[0][1] == MachineState.IDLE.value:
            stored = stored[1:]  # the first state before the script, re-stated by a birth (the script starts elsewhere)
        expected = expected_states(truth[machine])
        got = [(s, r) for _, s, r in stored]
        assert got == [(s, r) for s, r, _ in expected], (machine, stored, expected)
        for (at_ms, state, _), (_, _, at_s) in zip(stored, expected, strict=True):
            late = at_ms / 1000 - at_s
            worst = max(worst, abs(late))
            if abs(late) > POLL_S:
                errors.append(f"{machine} {state}: stored {late:+.3f} s from the truth (bound {POLL_S} s)")
    print(f"largest |stored - truth| of a change: {worst:.3f} s (bound: one poll interval, {POLL_S} s)")
    return errors


def run_pipeline(services: Services, root: Path, server: MachineryServer, security: str, env: dict[str, str]) -> None:
    database = unique("opcua")
    settings = services.settings(database)
    site, workshop, gateway_id = unique("ua"), "knit", f"gw-ua-{database[-6:]}"
    services.grant(gateway_id, Role.GATEWAY, site=site, workshop=workshop)
    config = root / "gateway.yaml"
    config.write_text(gateway_yaml(workshop, gateway_id, server.endpoint, security))
    parse_gateway_config(config.read_text())  # the file itself is valid
    process_env = ftel_env(
        settings, FTEL_INGEST__GROUP=database, FTEL_GATEWAY__STATE_DIR=str(root / "state"), FTEL_SITE=site, **env
    )
    worker_name = services.grant(f"{database}-w", Role.INGEST)
    processes = {"worker": start_ftel(["ingest", "--worker-id", worker_name], process_env, root / "worker.log")}
    query = InfluxQuery(services.admin(database).influx)
    try:
        wait_ready(root / "worker.log")
        begin_ms = int(time.time() * 1000)
        processes["gateway"] = start_ftel(["gateway", "--config", str(config)], process_env, root / "gateway.log")
        wait_every_machine_read(query, root)
        drive_ms = int(time.time() * 1000)
        truth = drive(server)
        wait_units(query, root)
        assert change_errors(query, truth, drive_ms) == []
        offline = [m for m in MACHINES if any(s == "OFFLINE" for _, s, _ in stored_changes(query, m, begin_ms))]
        assert offline == [], offline
    finally:
        stop_processes([processes[k] for k in ("gateway", "worker") if k in processes], timeout_s=15)
        query.close()


def test_six_machinery_machines_of_one_vendor_model_equal_the_servers_record(
    services: Services, tmp_path: Path, servers: list[MachineryServer]
) -> None:
    server = MachineryServer(free_port(), MACHINES).start()
    servers.append(server)
    server.set(MACHINES[0], units=WRAP_START)
    run_pipeline(services, tmp_path, server, security="", env={})


def test_the_same_with_signandencrypt_a_user_and_a_trusted_server_certificate(
    services: Services, tmp_path: Path, servers: list[MachineryServer]
) -> None:
    pki = make_pkis(tmp_path, trusted=True)
    password = unique("pw")
    server = secured_server(free_port(), pki, password).start()
    servers.append(server)
    server.set(MACHINES[0], units=WRAP_START)
    run_pipeline(services, tmp_path, server, security=security_yaml(pki), env={PASSWORD_ENV: password})


# -- refusals and what they say ---------------------------------------------------------------------------------


def probe(
    config: Path, env: dict[str, str], machines: tuple[str, ...] = (MACHINES[1],)
) -> subprocess.CompletedProcess[str]:
    chosen = [arg for machine in machines for arg in ("--machine", machine)]
    return subprocess.run(
        [sys.executable, "-m", "ftel.app", "gateway", "probe", "--config", str(config), *chosen],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_an_unknown_server_certificate_is_refused_with_how_to_trust_it(
    tmp_path: Path, servers: list[MachineryServer]
) -> None:
    pki = make_pkis(tmp_path, trusted=False)
    password = unique("pw")
    server = secured_server(free_port(), pki, password).start()
    servers.append(server)
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml("knit", "gw-knit", server.endpoint, security_yaml(pki)))
    env = {**ftel_env_minimal(), PASSWORD_ENV: password}

    refused = probe(config, env)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    rejected = sorted(pki.gateway.rejected.iterdir())
    assert len(rejected) == 1, said
    assert "does not trust" in " ".join(said.split()), said
    assert "ftel auth opcua trust" in said, said

    trusted = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftel.app",
            "auth",
            "opcua",
            "trust",
            str(rejected[0]),
            "--pki",
            str(pki.gateway.directory),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert trusted.returncode == 0, trusted.stderr
    accepted = probe(config, env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "IDLE" in accepted.stdout + accepted.stderr


def ftel_env_minimal() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}


def test_what_is_missing_is_named_with_what_was_found_instead(servers: list[MachineryServer]) -> None:
    server = MachineryServer(free_port(), MACHINES[:2]).start()
    servers.append(server)
    # The building blocks' CurrentState and Id came with the instance, numbered by the server like the vendor's own.
    ids = server.node_ids(MACHINES[0])
    assert sorted(ids) == sorted(
        ["item_state.text", "item_state.id", "operation_mode.text", "operation_mode.id", "fault_code", "units", "speed"]
    )
    assert all(re.fullmatch(rf"ns={server.vendor};i=\d+", node_id) for node_id in ids.values()), ids
    base = gateway_yaml("knit", "gw-knit", server.endpoint, "").split("machines:\n")[0]

    def connect_error(driver: str, signals: str | None = None) -> str:
        text = base + f"machines:\n  - id: KNIT-X\n    model: Example knitting machine\n    driver: {{{driver}}}\n"
        if signals is not None:
            text = text.replace('units: {path: "v:Counters/v:Pieces"}', f"units: {{path: {signals}}}")
        config = parse_gateway_config(text)
        source, _ = source_for(config.machines[0], config.models["Example knitting machine"], time_scale=1.0)

        async def connect() -> str:
            try:
                await source.connect()
            except SourceError as error:
                return str(error)
            finally:
                await source.close()
            raise AssertionError("connected")

        return asyncio.run(connect())

    endpoint = f'kind: opcua, endpoint: "{server.endpoint}"'
    unknown = connect_error(f"{endpoint}, browse_name: KNIT-V999")
    assert "no machine 'KNIT-V999' under Objects/Machines" in unknown
    assert "or DeviceSet (it holds" in unknown  # searched next, and said so
    assert f"{server.vendor}:KNIT-V001" in unknown
    assert f"{server.vendor}:KNIT-V002" in unknown
    assert f"{server.example}:{EXAMPLE_MACHINE}" in unknown  # the example's own machine is listed, not taken
    serial = connect_error(f"{endpoint}, identification: {{SerialNumber: SN-0000}}")
    assert "SerialNumber='SN-4711'" in serial
    assert "SerialNumber='SN-0000'" in serial
    path = connect_error(f"{endpoint}, browse_name: KNIT-V001", signals='"v:Counters/v:Rejects"')
    assert f"no {server.vendor}:Rejects under {server.vendor}:KNIT-V001/{server.vendor}:Counters" in path
    assert f"{server.vendor}:Pieces" in path


# -- machines named by their vendor ----------------------------------------------------------------------------


def test_machines_named_by_their_vendor_are_found_by_identification_under_machines_or_deviceset(
    tmp_path: Path, servers: list[MachineryServer]
) -> None:
    ours = MACHINES[:4]
    # Browse names that are not our ids; two machines only under DI's DeviceSet, one under both (one node), one
    # under Machines with its controller, a DI device of the same serial number, under DeviceSet.
    named = {ours[0]: "CMS 530 HP #7", ours[1]: "Steuerung 2", ours[2]: "GE2-52C 0813", ours[3]: "Steuerung 4"}
    placed: dict[str, Placement] = {ours[0]: "twin", ours[1]: "DeviceSet", ours[2]: "both", ours[3]: "DeviceSet"}
    server = MachineryServer(free_port(), ours, browse_names=named, placed=placed).start()
    servers.append(server)
    server.set(ours[0], item="Executing", mode="Processing", units=5)
    server.set(ours[1], item="OutOfService", mode="Processing", fault_code=101)
    server.set(ours[2], item="NotExecuting", mode="Setup")
    server.set(ours[3], item="OutOfService", mode="Maintenance")
    located = {
        ours[0]: "identification: {SerialNumber: SN-4711}",
        ours[1]: f'identification: {{ProductInstanceUri: "{VENDOR_URI}:SN-4712"}}',
        ours[2]: "identification: {SerialNumber: SN-4713}",
        ours[3]: f'browse_name: "{named[ours[3]]}"',  # not under Machines: DeviceSet is searched next
    }
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml("knit", "gw-knit", server.endpoint, "", located))
    probed = probe(config, ftel_env_minimal(), tuple(ours))
    said = " ".join((probed.stdout + probed.stderr).split())
    assert probed.returncode == 0, said
    for machine, state in zip(ours, ("RUNNING", "DOWN (yarn_break)", "SETUP", "MAINTENANCE"), strict=True):
        assert f"{machine}: {state}" in said, (machine, said)

    # A property every machine shares finds several (the machine under both counted once): refused.
    shared = gateway_yaml(
        "knit", "gw-knit", server.endpoint, "", {ours[0]: f'identification: {{Manufacturer: "{MANUFACTURER}"}}'}
    )
    config.write_text(shared)
    refused = probe(config, ftel_env_minimal(), (ours[0],))
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0, said
    assert f"4 machines have Manufacturer='{MANUFACTURER}'" in said, said


# -- discovery --------------------------------------------------------------------------------------------------


def test_discover_drafts_a_file_that_probe_accepts_over_a_secured_channel(
    tmp_path: Path, servers: list[MachineryServer]
) -> None:
    pki = make_pkis(tmp_path, trusted=True)
    password = unique("pw")
    server = secured_server(free_port(), pki, password).start()
    servers.append(server)
    env = {**ftel_env_minimal(), PASSWORD_ENV: password}
    draft = tmp_path / "draft.yaml"
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftel.app",
            "gateway",
            "discover",
            "--opcua",
            server.endpoint,
            "--out",
            str(draft),
            "--policy",
            "Basic256Sha256",
            "--mode",
            "SignAndEncrypt",
            "--pki",
            str(pki.gateway.directory),
            "--username",
            "knit-gateway",
            "--password-env",
            PASSWORD_ENV,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    everything = [EXAMPLE_MACHINE, *MACHINES]  # the example's own machine comes first under Objects/Machines
    assert f"[{len(everything)}/{len(everything)}]" in found.stderr  # progress, machine by machine
    assert password not in draft.read_text()  # the secret stays a reference
    config = parse_gateway_config(draft.read_text())
    assert [m.id for m in config.machines] == everything
    by_machine = {m.id: m.model for m in config.machines}
    # One model serves every machine of ours; the example's machine, of the same type but without the vendor's
    # variables, gets a model of its own rather than lending its (empty) one to ours.
    (ours,) = {by_machine[m] for m in MACHINES}
    example = config.models[by_machine[EXAMPLE_MACHINE]]
    assert by_machine[EXAMPLE_MACHINE] != ours
    assert example.opcua is not None
    assert example.opcua.signals == {}
    model = config.models[ours]
    assert model.opcua is not None
    assert model.opcua.machinery
    paths = {signal.value: spec.path for signal, spec in model.opcua.signals.items()}
    assert paths == {"fault_code": "v:Alarm/v:Code", "units": "v:Counters/v:Pieces", "speed": "v:CarriageSpeed"}
    assert model.opcua.namespaces == {"v": VENDOR_URI}
    server.set(MACHINES[1], item="Executing", mode="Processing", units=3)
    probed = probe(draft, env)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert f"{MACHINES[1]}: RUNNING" in probed.stdout + probed.stderr


# -- every policy and mode, and an X.509 user -------------------------------------------------------------------

OFFERED = [
    ua.SecurityPolicyType.Basic256Sha256_Sign,
    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
]


def read_once(text: str) -> dict[str, object]:
    config = parse_gateway_config(text)
    source, _ = source_for(config.machines[0], config.models["Example knitting machine"], time_scale=1.0)

    async def read() -> dict[str, object]:
        try:
            await source.connect()
            return dict(await source.read())
        finally:
            await source.close()

    return asyncio.run(read())


def test_every_policy_and_mode_and_an_x509_user_read_the_machine(
    tmp_path: Path, servers: list[MachineryServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pkis(tmp_path, trusted=True)
    user = make_application_certificate(
        OpcUaPki(tmp_path / "user"), application_uri="urn:test:knit-operator", hosts=("127.0.0.1",)
    )
    password = unique("pw")
    options = SecurityOptions(
        certificate=pki.server.certificate,
        private_key=pki.server.private_key,
        policies=OFFERED,
        users={"knit-gateway": password},
        user_certificate_der=user.certificate.read_bytes(),
    )
    server = MachineryServer(free_port(), MACHINES[:1], security=options).start()
    servers.append(server)
    server.set(MACHINES[0], item="Executing", mode="Processing", units=11)
    monkeypatch.setenv(PASSWORD_ENV, password)
    base = gateway_yaml("knit", "gw-knit", server.endpoint, "").split("machines:\n")[0]
    password_user = f"{{username: knit-gateway, password: {{env: {PASSWORD_ENV}}}}}"
    x509_user = f"{{certificate: {user.certificate}, private_key: {user.private_key}}}"
    read = []
    for policy in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"):
        for mode in ("Sign", "SignAndEncrypt"):
            for who in (password_user, x509_user):
                security = f"{{policy: {policy}, mode: {mode}, pki: {pki.gateway.directory}, user: {who}}}"
                driver = (
                    f'{{kind: opcua, endpoint: "{server.endpoint}", browse_name: {MACHINES[0]}, security: {security}}}'
                )
                text = (
                    base
                    + f"machines:\n  - id: {MACHINES[0]}\n    model: Example knitting machine\n    driver: {driver}\n"
                )
                sample = read_once(text)
                assert sample["item_state"] == "Executing", (policy, mode, who)
                assert sample["units"] == 11
                read.append((policy, mode))
    assert len(read) == 12
