"""`ftel alerts run | list | ack | export-grafana`."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiomqtt
from pydantic import ValidationError

from alerts.errors import RulesError
from alerts.grafana_rules import write_grafana_rules
from alerts.lifecycle import AlertRecord
from alerts.rules import AlertConfig, load_config, parse_config
from alerts.worker import AckCommand, AlertWorker
from ftel.contract.topics import ACK_TOPIC, alerts_filter
from ftel.errors import CliError
from ftel.mqtt import aiomqtt_options
from ftel.plant.calendar import Calendar, load_calendar
from ftel.security.credentials import with_identity
from ftel.security.identities import ALERTS, MAINTENANCE, SUPERVISOR
from ftel.settings import MqttSettings, Settings
from ftel.signals import stop_on_signals

# Retained alerts arrive right after the subscription; the listing ends after this long without one.
LIST_QUIET_S = 0.5
LIST_MAX_S = 10.0


def _config(args: argparse.Namespace, calendar: Calendar | None = None) -> AlertConfig:
    """The rules file with the command line's additions; ``calendar``: the site's (time-in-state rules count
    only its planned time)."""
    try:
        config = load_config(args.rules)
    except RulesError as error:
        raise CliError(str(error)) from error
    data = config.model_dump()
    worker = data["worker"]
    for option in ("state_dir", "group", "client_id"):
        if getattr(args, option, None):
            worker[option] = getattr(args, option)
    worker["allow_hosts"] = (*worker["allow_hosts"], *(getattr(args, "allow_host", None) or ()))
    data["webhooks"] = [
        *data["webhooks"],
        *({"name": f"cli-{i + 1}", "url": url} for i, url in enumerate(getattr(args, "webhook", None) or [])),
    ]
    if calendar is not None:
        data["calendar"] = calendar
    # Validated again as a whole: command-line webhooks get the same checks as the file's.
    try:
        return parse_config(data, source="command line and rules")
    except RulesError as error:
        raise CliError(str(error)) from error


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    calendar = load_calendar(settings.calendar) if settings.calendar else None
    # The real ports (broker, store, InfluxDB writers, webhook client) are the worker's defaults.
    worker = AlertWorker(with_identity(settings, args.identity), _config(args, calendar), site=args.site)
    worker.run(stop_on_signals())
    return 0


async def read_retained_alerts(mqtt: MqttSettings, *, quiet_s: float = LIST_QUIET_S) -> list[AlertRecord]:
    """Every alert on the retained alert topics, newest first."""
    found: dict[str, AlertRecord] = {}
    try:
        async with aiomqtt.Client(**aiomqtt_options(mqtt)) as client:
            await client.subscribe(alerts_filter(), qos=1)
            deadline = time.monotonic() + LIST_MAX_S
            messages = client.messages
            while time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(anext(messages), quiet_s)
                except TimeoutError:
                    break
                if not isinstance(message.payload, bytes) or not message.payload:
                    continue
                try:
                    record = AlertRecord.model_validate_json(message.payload)
                except ValidationError:
                    continue
                found[record.alert_id] = record
    except aiomqtt.MqttError as error:
        raise CliError(f"cannot reach the MQTT broker at {mqtt.host}:{mqtt.port}: {error}") from error
    return sorted(found.values(), key=lambda r: r.fired_ms, reverse=True)


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    alerts = asyncio.run(read_retained_alerts(with_identity(settings, SUPERVISOR).mqtt))
    if not args.all:
        alerts = [a for a in alerts if a.is_open]
    if args.json:
        print(json.dumps([a.model_dump(mode="json") for a in alerts], indent=2, sort_keys=True))
        return 0
    if not alerts:
        print("no open alerts" if not args.all else "no alerts")
        return 0
    for a in alerts:
        fired = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.fired_ms / 1000))
        print(f"{a.alert_id:32} {a.status.value:12} {a.severity:8} {fired}Z  {a.summary}")
    return 0


async def _ack(mqtt: MqttSettings, command: AckCommand) -> None:
    async with aiomqtt.Client(**aiomqtt_options(mqtt)) as client:
        await client.publish(ACK_TOPIC, command.encode(), qos=1)


def _cmd_ack(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_identity(settings, MAINTENANCE)
    alerts = {a.alert_id: a for a in asyncio.run(read_retained_alerts(settings.mqtt))}
    alert = alerts.get(args.alert_id)
    if alert is None:
        raise CliError(f"no alert {args.alert_id!r} on {alerts_filter()} (see `ftel alerts list --all`)")
    if not alert.is_open:
        raise CliError(f"alert {args.alert_id} is already resolved")
    try:
        asyncio.run(_ack(settings.mqtt, AckCommand(alert_id=args.alert_id, by=args.by)))
    except aiomqtt.MqttError as error:
        raise CliError(f"cannot reach the MQTT broker: {error}") from error
    print(f"acknowledgement of {args.alert_id} sent to the alert worker ({ACK_TOPIC})")
    return 0


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    path = write_grafana_rules(args.out, _config(args))
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="maintenance alerts: run the worker, list, ack, export",
        description="Rules over the live event stream (docs/alerts.md).",
    )
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    def rules_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rules", type=Path, help="rules YAML (default: the built-in alerts/rules.yaml)")

    run = sub.add_parser(
        "run",
        help="run the alert worker",
        description="Subscribes to the event stream with its own shared-subscription group and a persistent "
        "session, evaluates the rules, publishes each alert retained on ftel/v1/alerts/<id>, writes the "
        "alerts measurement and calls webhooks.",
    )
    rules_option(run)
    run.add_argument("--site", help="only this site (default: settings' site; '+' for every site)")
    run.add_argument("--state-dir", type=Path, help="where the snapshot and outbox live (sqlite)")
    run.add_argument("--group", help="shared-subscription group (default: alerts)")
    run.add_argument("--client-id", help="stable MQTT client id (default: ftel-alerts-<group>)")
    run.add_argument("--webhook", action="append", help="webhook URL (repeatable), added to the rules file's")
    run.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        help="an internal host (name, address or network) webhooks may reach (repeatable; worker allow_hosts)",
    )
    run.add_argument(
        "--identity",
        default=ALERTS,
        help="identity to connect as (default: alerts); a second worker, e.g. of another group, needs its own",
    )
    run.set_defaults(handler=_cmd_run)

    listing = sub.add_parser("list", help="list alerts from the retained alert topics")
    listing.add_argument("--all", action="store_true", help="include resolved alerts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_cmd_list)

    ack = sub.add_parser("ack", help="acknowledge a firing alert")
    ack.add_argument("alert_id", metavar="ID")
    ack.add_argument("--by", default="cli", help="who acknowledges (recorded on the alert)")
    ack.set_defaults(handler=_cmd_ack)

    export = sub.add_parser("export-grafana", help="write the rules as Grafana alert-rule provisioning YAML")
    rules_option(export)
    export.add_argument(
        "--out", type=Path, required=True, help="Grafana tree root: writes <out>/provisioning/alerting/ftel-alerts.yaml"
    )
    export.set_defaults(handler=_cmd_export)
