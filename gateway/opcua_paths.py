"""OPC UA browse paths as a gateway file writes them (pure: no client, no server).

A path is relative to the machine's object and names one node per step, each with its namespace:
``3:Counters/3:Pieces`` (namespace indexes, as the server numbers them), ``v:Counters/v:Pieces`` (an alias that
the model maps to a namespace URI under ``opcua.namespaces``), or, as a YAML list, steps written
``nsu=<URI>;<Name>``. A step without a prefix is in namespace 0 (OPC 10000-4, A.2). ``&`` escapes a ``/``, ``:``
or ``&`` inside a name. URIs are what a server keeps across updates; its indexes may change, so prefer them.
"""

from __future__ import annotations

from dataclasses import dataclass


class BrowsePathError(ValueError):
    """A path the gateway cannot read (raised while the configuration is validated)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a path: a browse name, its namespace an index (int) or a URI (str)."""

    namespace: int | str
    name: str

    def describe(self) -> str:
        return (
            f"{self.namespace}:{self.name}" if isinstance(self.namespace, int) else f"nsu={self.namespace};{self.name}"
        )


def _split(text: str, separator: str, *, keep_escapes: bool = False) -> list[str]:
    """``text`` cut at each unescaped ``separator`` (escapes removed, or kept for a later split)."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "&":
            current += char if keep_escapes else ""
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    if escaped:
        raise BrowsePathError(f"{text!r} ends with a lone '&' (it escapes the character after it)")
    parts.append(current)
    return parts


def _step(text: str, aliases: dict[str, str]) -> Step:
    if text.startswith("nsu="):
        uri, separator, name = text[4:].partition(";")
        if not separator or not uri or not name:
            raise BrowsePathError(f"step {text!r}: write nsu=<namespace URI>;<browse name>")
        return Step(uri, name)
    head, *rest = _split(text, ":")
    if not rest:
        return Step(0, head)
    name = ":".join(rest)
    if not name:
        raise BrowsePathError(f"step {text!r} has no browse name after its namespace")
    if head.isdigit():
        return Step(int(head), name)
    if head in aliases:
        return Step(aliases[head], name)
    known = ", ".join(sorted(aliases)) or "none: add them under opcua.namespaces"
    raise BrowsePathError(f"step {text!r}: {head!r} is neither a namespace index nor an alias (aliases: {known})")


def parse_path(path: str | list[str], aliases: dict[str, str]) -> tuple[Step, ...]:
    """The steps of ``path`` (a ``/``-separated string, or a list of steps), aliases replaced by their URIs."""
    texts = path if isinstance(path, list) else _split(path, "/", keep_escapes=True)
    if not texts:
        raise BrowsePathError("a path needs at least one step")
    if any(not text for text in texts):
        raise BrowsePathError(f"path {path!r} has an empty step (two '/' in a row, or one at an end)")
    return tuple(_step(text, aliases) for text in texts)
