"""``ftel dashboards build | publish`` and ``ftel report``.

Handlers import their work lazily: matplotlib and the SDK stay out of every other command's start-up, and
ftel.app.cli (which imports this module) is only imported once it is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ftel.settings import Settings

DEFAULT_TREE = Path("grafana")
VARIABLE_OPTIONS = ("workshop", "machine_type", "machine")


def _reader(settings: Settings) -> Settings:
    """Boards and reports only read: the supervisor's (read-only) InfluxDB user, unless settings say otherwise."""
    from ftel.security.credentials import with_identity
    from ftel.security.identities import SUPERVISOR

    return with_identity(settings, SUPERVISOR)


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.build import build_tree

    written = build_tree(args.out, _reader(settings), datasource_url=args.datasource_url)
    print(f"wrote {len(written)} files under {args.out}:")
    for path in written:
        print(f"  {path}")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.errors import PublishError
    from dashboards.publish import Credentials, publish
    from ftel.errors import CliError

    if args.token is None and (args.user is None or args.password is None):
        raise CliError("publish needs --token, or --user and --password, of a Grafana admin or editor")
    try:
        changes = publish(
            _reader(settings),
            args.grafana_url,
            Credentials(args.token, args.user, args.password),
            datasource_url=args.datasource_url,
            tree=args.tree,
        )
    except PublishError as error:
        raise CliError(str(error)) from error
    for change in changes:
        print(f"{change.action:9} {change.kind}: {change.name}")
    changed = sum(c.action != "unchanged" for c in changes)
    print(f"{changed} of {len(changes)} changed in Grafana at {args.grafana_url}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.errors import PeriodError
    from dashboards.report import write_report
    from dashboards.shifts import between, parse_shift
    from ftel.errors import CliError
    from ftel.plant.calendar import site_calendar
    from ftel.storage.query import QueryError

    calendar = site_calendar(settings.calendar)
    try:
        if args.shift is not None:
            if args.start or args.end:
                raise CliError("give either --shift or --from/--to, not both")
            period = parse_shift(args.shift, calendar=calendar)
        elif args.start and args.end:
            period = between(args.start, args.end, calendar)
        else:
            example = f"2026-03-01/{calendar.shifts[0].name}"
            raise CliError(f"say which period: --shift last, --shift {example}, or --from … --to …")
    except PeriodError as error:
        raise CliError(str(error)) from error
    variables = {name: tuple(getattr(args, name)) for name in VARIABLE_OPTIONS if getattr(args, name)}
    try:
        data = write_report(_reader(settings), period, args.out, variables=variables, calendar=calendar)
    except QueryError as error:
        raise CliError(f"cannot read InfluxDB ({error}); check FTEL_INFLUX__URL and FTEL_INFLUX__DATABASE") from error
    machines = sum(sum(c.values()) for c in data.machines_by_state.values())
    print(f"wrote {args.out}: {period.label}, {machines} machines")
    if period.zone_assumed:
        print(
            f"--from/--to without an offset were read as {calendar.time_label}; add Z or an offset such as +08:00 "
            "to give another zone"
        )
    return 0


def _tree_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datasource-url",
        metavar="URL",
        help="InfluxDB URL as Grafana reaches it (default: influx.url from the settings; inside "
        "docker compose use http://influxdb:8086)",
    )


def register(subparsers: Any) -> None:
    dashboards = subparsers.add_parser(
        "dashboards",
        help="Grafana boards as code: build the provisioning tree or publish to a Grafana",
        description="Build the Grafana provisioning tree (data source, dashboard provider, boards) or "
        "publish it to a running Grafana through its HTTP API.",
    )
    actions = dashboards.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="write the provisioning tree (docker compose mounts it into Grafana)",
        description="Write <out>/provisioning/{datasources,dashboards,alerting}/, <out>/dashboards/*.json. "
        "Passwords and tokens are read by Grafana from its environment, never written.",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_TREE,
        metavar="DIR",
        help=f"directory to write the tree to (default: {DEFAULT_TREE})",
    )
    _tree_options(build)
    build.set_defaults(handler=_build)

    publish = actions.add_parser(
        "publish",
        help="push data source, folder, boards and alert rules to a running Grafana (idempotent)",
        description="Create or update the InfluxDB data source, the folder and every board in an existing "
        "Grafana. A second publish changes nothing.",
    )
    publish.add_argument("--grafana-url", required=True, metavar="URL", help="e.g. http://localhost:3000")
    publish.add_argument("--token", help="a Grafana service-account token (or use --user and --password)")
    publish.add_argument("--user", help="Grafana user name (with --password)")
    publish.add_argument("--password", help="Grafana password (with --user)")
    publish.add_argument(
        "--tree",
        type=Path,
        metavar="DIR",
        help="a tree from `ftel dashboards build`: its alert rules are published too",
    )
    _tree_options(publish)
    publish.set_defaults(handler=_publish)

    report = subparsers.add_parser(
        "report",
        help="render the shift report (HTML with charts) from InfluxDB",
        description="Utilisation per workshop, downtime Pareto, micro-stops, planned time and OEE over it, worst "
        "machines, machines by state and a state timeline per workshop, as one HTML page with embedded PNG charts. "
        "Shifts, planned time and plant time come from the site's calendar (`ftel calendar show`); times without "
        "an offset are plant time.",
    )
    report.add_argument(
        "--shift",
        metavar="SHIFT",
        help="'last' (the last finished shift) or DATE/SHIFT with a shift name of the calendar, e.g. "
        "2026-03-01/early (the default calendar: night 00-08, early 08-16, late 16-24)",
    )
    report.add_argument("--from", dest="start", metavar="TIME", help="period start, ISO, e.g. 2026-03-01T08:00")
    report.add_argument("--to", dest="end", metavar="TIME", help="period end, ISO, e.g. 2026-03-01T16:00")
    report.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        metavar="FILE",
        help="HTML file to write (default: report.html)",
    )
    for name in VARIABLE_OPTIONS:
        report.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            action="append",
            metavar="ID",
            help=f"only this {name.replace('_', ' ')} (repeat for several; default: all)",
        )
    report.set_defaults(handler=_report)
