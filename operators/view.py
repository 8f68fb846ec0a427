"""The page's HTML (pure): large type and touch targets a gloved hand hits on a phone or a workshop tablet, no
script at all. Every form carries the session's CSRF token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from html import escape
from urllib.parse import quote

from ftel.contract.states import MACHINE_TYPE_LABELS, MachineState
from ftel.plant.orders import Job, OrderBook
from ftel.plant.reasons import ReasonBook, ReasonGroup
from operators.board import ListedStop
from operators.jobs import MachineJob

GROUP_LABELS = {
    ReasonGroup.UNPLANNED: "Unplanned",
    ReasonGroup.PLANNED: "Planned",
    ReasonGroup.CHANGEOVER: "Changeover",
}

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:20px/1.4 system-ui,sans-serif;background:#f4f4f4;color:#111}
header{background:#1f3a5f;color:#fff;padding:12px 16px;display:flex;flex-wrap:wrap;gap:8px;align-items:center}
header h1{font-size:22px;margin:0;flex:1}
main{padding:12px;max-width:760px;margin:0 auto}
a{color:inherit}
.stop{display:block;background:#fff;border-left:10px solid #8e8e8e;border-radius:10px;margin:0 0 12px;padding:14px 16px;
 min-height:88px;text-decoration:none;box-shadow:0 1px 3px #0003}
.stop.DOWN{border-left-color:#d62f2f}.stop.IDLE{border-left-color:#e0b400}
.stop b{font-size:24px}.muted{color:#555;font-size:18px}
.open{background:#d62f2f;color:#fff;border-radius:6px;padding:2px 8px;font-size:16px}
.given{color:#1b6e2e}.none{color:#a33}
button,.btn{display:block;width:100%;min-height:72px;font-size:22px;margin:0 0 10px;border:0;border-radius:10px;
 background:#1f3a5f;color:#fff;padding:12px;text-align:center;text-decoration:none}
button.current{background:#1b6e2e}
header button{width:auto;min-height:56px;margin:0;font-size:18px;background:#33557f;padding:8px 16px}
nav a{display:inline-block;min-height:56px;line-height:56px;padding:0 14px;margin:0 6px 0 0;background:#33557f;
 border-radius:8px;text-decoration:none}
nav a.here{background:#fff;color:#1f3a5f}
h2{font-size:20px;margin:18px 0 8px}
input{display:block;width:100%;min-height:64px;font-size:22px;margin:0 0 14px;padding:8px 12px}
.msg{background:#fff3c4;padding:12px;border-radius:8px;margin:0 0 12px}
"""


def page(title: str, body: str, *, header: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>{header}</header><main>{body}</main></body></html>"
    )


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(token)}">'


def login(csrf: str, *, error: str = "") -> str:
    message = f'<p class="msg">{escape(error)}</p>' if error else ""
    form = (
        f'{message}<form method="post" action="/login">{csrf_field(csrf)}'
        '<label>Name<input name="name" autocomplete="username" autocapitalize="none" required></label>'
        '<label>Password<input name="password" type="password" autocomplete="current-password" required></label>'
        "<button>Sign in</button></form>"
    )
    return page("Stops — sign in", form)


def _clock(ms: int, zone: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%a %d %b %H:%M")


def duration(ms: int) -> str:
    minutes = ms // 60_000
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes} min" if minutes else f"{ms // 1000} s"


def _header(who: str, workshops: Sequence[str], here: str, csrf: str) -> str:
    links = "".join(f'<a href="/w/{quote(w)}"{" class=here" if w == here else ""}>{escape(w)}</a>' for w in workshops)
    links += f'<a href="/w/{quote(here)}/jobs">Styles &amp; orders</a>'
    return (
        f"<nav>{links}</nav><form method=post action=/logout>{csrf_field(csrf)}"
        f"<button>Sign out {escape(who)}</button></form>"
    )


def stop_link(workshop: str, listed: ListedStop) -> str:
    stop = listed.stop
    return f"/w/{quote(workshop)}/stop/{quote(stop.machine.machine_id)}/{stop.start_ms}"


def _what(listed: ListedStop) -> str:
    if listed.stop.state is MachineState.DOWN:
        return "Down, no reason from the machine"
    return "Idle"


def stops(
    *,
    who: str,
    workshops: Sequence[str],
    workshop: str,
    listed: Sequence[ListedStop],
    book: ReasonBook,
    zone: tzinfo,
    csrf: str,
    notice: str = "",
) -> str:
    cards = []
    for item in listed:
        stop = item.stop
        since = "now" if stop.end_ms is None else _clock(stop.end_ms, zone)
        state = '<span class="open">still stopped</span> ' if stop.end_ms is None else ""
        if item.standing is None:
            reason = '<span class="none">No reason yet — tap to give one</span>'
        else:
            reason = (
                f'<span class="given">{escape(book.label(item.standing.reason))}</span> ({escape(item.standing.who)})'
            )
        cards.append(
            f'<a class="stop {stop.state.value}" href="{stop_link(workshop, item)}">'
            f"<b>{escape(stop.machine.machine_id)}</b> {state}<br>"
            f'<span class="muted">{_what(item)} · {_clock(stop.start_ms, zone)} → {since} · '
            f"{duration(item.unexplained_ms)}</span><br>{reason}</a>"
        )
    body = "".join(cards) or "<p>No stops without a reason. Well done.</p>"
    message = f'<p class="msg">{escape(notice)}</p>' if notice else ""
    return page(f"Stops in {workshop}", message + body, header=_header(who, workshops, workshop, csrf))


def choose(
    *,
    who: str,
    workshops: Sequence[str],
    workshop: str,
    listed: ListedStop,
    book: ReasonBook,
    zone: tzinfo,
    csrf: str,
) -> str:
    stop = listed.stop
    current = listed.standing.reason if listed.standing else None
    parts = [
        f"<p><b>{escape(stop.machine.machine_id)}</b> · {escape(MACHINE_TYPE_LABELS[stop.machine.machine_type])}<br>"
        f'<span class="muted">{_what(listed)} from {_clock(stop.start_ms, zone)} · '
        f"{duration(listed.unexplained_ms)}</span></p>"
    ]
    if listed.standing is not None:
        parts.append(
            f'<p class="msg">Now: {escape(book.label(listed.standing.reason))}, given by {escape(listed.standing.who)} '
            f"at {_clock(listed.standing.at_ms, zone)}. Tap another reason to correct it.</p>"
        )
    action = stop_link(workshop, listed)
    for group, heading in GROUP_LABELS.items():  # unplanned first: most stops that want a reason are
        in_group = [r for r in book.choices(stop.machine.machine_type) if r.group is group]
        if not in_group:
            continue
        parts.append(f"<h2>{heading}</h2>")
        for reason in in_group:
            mark = ' class="current"' if reason.code == current else ""
            parts.append(
                f'<form method="post" action="{action}">{csrf_field(csrf)}'
                f'<button name="reason" value="{escape(reason.code)}"{mark}>{escape(reason.label)}</button></form>'
            )
    parts.append(f'<a class="btn" href="/w/{quote(workshop)}">Back</a>')
    return page(
        f"Why did {stop.machine.machine_id} stop?", "".join(parts), header=_header(who, workshops, workshop, csrf)
    )


def refusal(title: str, text: str) -> str:
    return page(title, f'<p class="msg">{escape(text)}</p><a class="btn" href="/">Back to my stops</a>')


def _job_text(job: Job | None) -> str:
    if job is None or not (job.style or job.order):
        return "no style or order set"
    return f"style {job.style or '–'}, order {job.order or '–'}"


def jobs(*, who: str, workshops: Sequence[str], workshop: str, machines: Sequence[MachineJob], csrf: str) -> str:
    cards = [
        f'<a class="stop" href="/w/{quote(workshop)}/job/{quote(m.machine.machine_id)}">'
        f"<b>{escape(m.machine.machine_id)}</b><br>"
        f'<span class="muted">{escape(_job_text(m.job))}</span></a>'
        for m in machines
    ]
    body = "".join(cards) or "<p>No knitting machine in this workshop.</p>"
    return page(f"Styles and orders in {workshop}", body, header=_header(who, workshops, workshop, csrf))


def job_picker(
    *, who: str, workshops: Sequence[str], workshop: str, machine: MachineJob, book: OrderBook, csrf: str
) -> str:
    action = f"/w/{quote(workshop)}/job/{quote(machine.machine.machine_id)}"
    parts = [
        f"<p><b>{escape(machine.machine.machine_id)}</b> is on {escape(_job_text(machine.job))}. "
        "A new choice starts at the next minute.</p>"
    ]
    if not book.orders and not book.styles:
        parts.append('<p class="msg">The plant has no orders file yet (FTEL_ORDERS): nothing to choose.</p>')
    if book.orders:
        parts.append("<h2>Order</h2>")
        parts += [
            f'<form method="post" action="{action}">{csrf_field(csrf)}'
            f'<button name="order" value="{escape(o.id)}">{escape(o.id)} · style {escape(o.style)}</button></form>'
            for o in book.orders
        ]
    if book.styles:
        parts.append("<h2>Style only</h2>")
        parts += [
            f'<form method="post" action="{action}">{csrf_field(csrf)}'
            f'<button name="style" value="{escape(s.id)}">{escape(s.name or s.id)}</button></form>'
            for s in book.styles
        ]
    parts.append(f'<a class="btn" href="/w/{quote(workshop)}/jobs">Back</a>')
    title = f"What is {machine.machine.machine_id} knitting?"
    return page(title, "".join(parts), header=_header(who, workshops, workshop, csrf))
