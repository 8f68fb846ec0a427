"""The OPC UA pieces that need no server: browse paths, the configuration of paths and security, the trust list,
discovery's candidates and its draft."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.errors import ConfigError
from ftel.security.opcua import (
    OpcUaPki,
    is_trusted,
    load_certificate,
    make_application_certificate,
    reject,
    thumbprint,
    trust,
)
from gateway.config import Signal, parse_gateway_config
from gateway.discover import machine_id
from gateway.discover.opcua_draft import DraftOptions, MachineFound, Variable, candidates, draft, path_text
from gateway.opcua_paths import BrowsePathError, Step, parse_path

VENDOR = "urn:vendor:knitting"


# -- browse paths -------------------------------------------------------------------------------------------------


def test_a_path_with_namespace_indexes_parses_into_steps() -> None:
    assert parse_path("3:Counters/3:Pieces", {}) == (Step(3, "Counters"), Step(3, "Pieces"))


def test_an_alias_stands_for_its_namespace_uri() -> None:
    assert parse_path("v:Counters/0:Pieces", {"v": VENDOR}) == (Step(VENDOR, "Counters"), Step(0, "Pieces"))


def test_a_list_of_nsu_steps_names_uris_directly() -> None:
    steps = parse_path(["nsu=http://x.org/UA/;Alarm", "nsu=http://x.org/UA/;Code"], {})
    assert steps == (Step("http://x.org/UA/", "Alarm"), Step("http://x.org/UA/", "Code"))


def test_escapes_keep_slashes_and_colons_inside_names() -> None:
    assert parse_path("2:Speed&/min/2:a&:b", {}) == (Step(2, "Speed/min"), Step(2, "a:b"))


def test_a_step_without_prefix_is_in_namespace_zero() -> None:
    assert parse_path("Objects", {}) == (Step(0, "Objects"),)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("3:Counters//3:Pieces", "empty step"),
        ("x:Counters", "neither a namespace index nor an alias"),
        ("3:", "no browse name"),
        ("3:Pieces&", "lone '&'"),
    ],
)
def test_a_wrong_path_says_what_is_wrong(path: str, says: str) -> None:
    with pytest.raises(BrowsePathError, match=says):
        parse_path(path, {})


def test_a_step_describes_itself_as_written() -> None:
    assert Step(3, "Pieces").describe() == "3:Pieces"
    assert Step(VENDOR, "Pieces").describe() == f"nsu={VENDOR};Pieces"


# -- the configuration ------------------------------------------------------------------------------------------

BASE = """
workshop: knit
gateway_id: gw-knit
models:
  M:
    type: knitting
    rated_speed: 1
    speed_unit: m/s
    service_interval_h: 200
    opcua:
      namespaces: {v: "urn:vendor:knitting"}
      signals:
        units: UNITS
machines:
  - id: KNIT-001
    model: M
    driver: {kind: opcua, endpoint: "opc.tcp://10.0.0.1:4840/"DRIVER}
"""


def config(units: str = "{path: v:Counters/v:Pieces}", driver: str = "") -> str:
    return BASE.replace("UNITS", units).replace("DRIVER", driver)


def test_a_signal_by_browse_path_is_accepted() -> None:
    model = parse_gateway_config(config()).models["M"]
    assert model.opcua is not None
    assert model.opcua.signals[Signal.UNITS].path == "v:Counters/v:Pieces"


def test_a_signal_needs_a_node_or_a_path_not_both() -> None:
    with pytest.raises(ConfigError, match="either node"):
        parse_gateway_config(config('{path: "v:A", node: "ns=2;i=5"}'))


def test_a_path_with_an_unknown_alias_is_refused_at_load_time() -> None:
    with pytest.raises(ConfigError, match=r"signals\.units\.path.*'w' is neither"):
        parse_gateway_config(config("{path: w:Counters}"))


def test_a_secured_driver_needs_its_pki() -> None:
    with pytest.raises(ConfigError, match="needs pki"):
        parse_gateway_config(config(driver=", security: {policy: Basic256Sha256, mode: SignAndEncrypt}"))


def test_policy_none_goes_with_mode_none() -> None:
    with pytest.raises(ConfigError, match="policy None goes with mode None"):
        parse_gateway_config(config(driver=", security: {mode: Sign}"))


def test_a_password_is_a_reference_never_the_secret() -> None:
    with pytest.raises(ConfigError, match="env"):
        parse_gateway_config(config(driver=", security: {user: {username: u, password: hunter2}}"))
    parsed = parse_gateway_config(config(driver=", security: {user: {username: u, password: {env: UA_PASSWORD}}}"))
    driver = parsed.machines[0].driver
    assert driver.kind == "opcua"
    assert driver.security.user is not None
    assert driver.security.user.password is not None
    assert driver.security.user.password.env == "UA_PASSWORD"


def test_a_user_certificate_needs_its_key() -> None:
    with pytest.raises(ConfigError, match="private_key"):
        parse_gateway_config(config(driver=", security: {user: {certificate: user.der}}"))


# -- certificates and the trust list ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[OpcUaPki, OpcUaPki]:
    root = tmp_path_factory.mktemp("pki")
    gateway = make_application_certificate(OpcUaPki(root / "gw"), application_uri="urn:gw", hosts=("127.0.0.1",))
    server = make_application_certificate(OpcUaPki(root / "srv"), application_uri="urn:srv", hosts=("localhost",))
    return gateway, server


def test_the_application_certificate_carries_its_uri_and_hosts(pkis: tuple[OpcUaPki, OpcUaPki]) -> None:
    from cryptography import x509

    gateway, _ = pkis
    certificate = load_certificate(gateway.certificate)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:gw"]
    assert gateway.private_key.stat().st_mode & 0o777 == 0o600


def test_a_certificate_is_trusted_once_in_the_trust_list(pkis: tuple[OpcUaPki, OpcUaPki], tmp_path: Path) -> None:
    _, server = pkis
    pki = OpcUaPki(tmp_path / "pki")
    certificate = load_certificate(server.certificate)
    assert not is_trusted(certificate, [])
    kept = reject(pki, certificate)
    assert kept.parent == pki.rejected
    trusted = trust(pki, kept)
    assert not kept.exists()  # trusted, it leaves rejected/
    assert trusted.name == thumbprint(certificate).lower() + ".der"
    assert is_trusted(certificate, [load_certificate(trusted)])


def test_an_expired_certificate_is_not_trusted_even_if_listed(pkis: tuple[OpcUaPki, OpcUaPki]) -> None:
    _, server = pkis
    certificate = load_certificate(server.certificate)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=5000)
    assert not is_trusted(certificate, [certificate], now=later)


def test_another_certificate_is_not_trusted(pkis: tuple[OpcUaPki, OpcUaPki]) -> None:
    gateway, server = pkis
    assert not is_trusted(load_certificate(server.certificate), [load_certificate(gateway.certificate)])


# -- discovery's guesses and draft ------------------------------------------------------------------------------


def variable(*names: str, data_type: str, value: object = 0) -> Variable:
    return Variable(tuple((VENDOR, n) for n in names), data_type, value)


def test_candidates_are_picked_by_name_and_data_type() -> None:
    found = candidates(
        [
            variable("Alarm", "Code", data_type="UInt16"),
            variable("Counters", "Pieces", data_type="UInt32"),
            variable("Counters", "Rejects", data_type="UInt32"),
            variable("CarriageSpeed", data_type="Double"),
            variable("DriveTemperature", data_type="Float"),
            variable("SpeedText", data_type="String", value="fast"),
        ]
    )
    assert {s: [v.name for v in vs] for s, vs in found.items()} == {
        Signal.FAULT_CODE: ["Code"],
        Signal.UNITS: ["Pieces"],
        Signal.DEFECTS: ["Rejects"],
        Signal.SPEED: ["CarriageSpeed"],
        Signal.TEMPERATURE: ["DriveTemperature"],
    }


def test_a_path_is_written_with_aliases_and_escapes() -> None:
    assert path_text(variable("Speed/min", data_type="Double"), {VENDOR: "v"}) == "v:Speed&/min"


def test_machine_ids_follow_the_contract() -> None:
    assert machine_id("Knit 12 / hall B") == "Knit-12-hall-B"
    assert machine_id("...") == "machine"


def test_the_draft_is_a_valid_gateway_file_with_one_model_per_type() -> None:
    machines = [
        MachineFound(
            browse_name=f"Knit {i}",
            namespace=VENDOR,
            type_name="GE2Type",
            variables=[
                variable("Counters", "Pieces", data_type="UInt32"),
                variable("Alarm", "Code", data_type="Int32"),
            ],
        )
        for i in (1, 2)
    ]
    machines.append(MachineFound("Old card", VENDOR, "CardType", blocks="no MachineryItemState", variables=[
        variable("ErrorCode", data_type="UInt16"),
    ]))  # fmt: skip
    text = draft(machines, DraftOptions("opc.tcp://10.0.0.5:4840/"))
    parsed = parse_gateway_config(text)
    assert sorted(parsed.models) == ["CardType", "GE2Type"]
    assert [(m.id, m.model) for m in parsed.machines] == [
        ("Knit-1", "GE2Type"),
        ("Knit-2", "GE2Type"),
        ("Old-card", "CardType"),
    ]
    card = parsed.models["CardType"]
    assert card.opcua is not None
    assert not card.opcua.machinery  # no building blocks: the state from its fault code
    assert card.rule is not None
    assert "check" in text


def test_machines_of_one_type_with_other_variables_get_a_model_of_their_own() -> None:
    # As a server built on the Foundation's Machinery example shows it: its ExampleMachine01 first, without the
    # vendor's variables, then the vendor's machines of the same type.
    example = MachineFound("ExampleMachine01", "http://opcfoundation.org/UA/Machinery_Example/", "ExampleMachineType")
    ours = [
        MachineFound(f"KNIT-V00{i}", VENDOR, "ExampleMachineType", variables=[
            variable("Counters", "Pieces", data_type="UInt32"),
            variable("Alarm", "Code", data_type="UInt16"),
        ])
        for i in (1, 2)
    ]  # fmt: skip
    parsed = parse_gateway_config(draft([example, *ours], DraftOptions("opc.tcp://127.0.0.1:4840/")))
    assert [(m.id, m.model) for m in parsed.machines] == [
        ("ExampleMachine01", "ExampleMachineType (ExampleMachine01)"),
        ("KNIT-V001", "ExampleMachineType (KNIT-V001)"),
        ("KNIT-V002", "ExampleMachineType (KNIT-V001)"),
    ]
    shared = parsed.models["ExampleMachineType (KNIT-V001)"].opcua
    assert shared is not None
    assert {s.value: spec.path for s, spec in shared.signals.items()} == {
        "fault_code": "v:Alarm/v:Code",
        "units": "v:Counters/v:Pieces",
    }


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_a_drafted_path_parses_back_to_the_browse_names(names: list[str]) -> None:
    written = path_text(variable(*names, data_type="UInt32"), {VENDOR: "v"})
    assert parse_path(written, {"v": VENDOR}) == tuple(Step(VENDOR, n) for n in names)
