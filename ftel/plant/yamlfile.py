"""YAML files validated by a pydantic model, with every problem named by file, line and field.

Scalars are read as text (YAML's base loader) and pydantic converts them: ``20:00`` stays a time of day (YAML 1.1
would read it as the sexagesimal integer 1200), ``no`` stays a word, and a date stays a date.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ftel.errors import ConfigError

Loc = tuple[int | str, ...]
M = TypeVar("M", bound=BaseModel)


def parse_yaml(
    text: str, model: type[M], *, source: str, what: str, context: dict[str, Any] | None = None
) -> tuple[M, yaml.Node | None]:
    """The validated model and the YAML tree (for naming the line of later checks)."""
    try:
        root = yaml.compose(text, Loader=yaml.BaseLoader)
        data: Any = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {getattr(error, 'problem', error)}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {what} is a mapping of keys to values")
    try:
        return model.model_validate(data, context=context), root
    except ValidationError as error:
        problems = [(tuple(e["loc"]), e["msg"]) for e in error.errors()]
        raise ConfigError(describe(problems, root, source)) from None


def describe(problems: Sequence[tuple[Loc, str]], root: yaml.Node | None, source: str) -> str:
    """One line per problem (the first ten): file, line, field and what is wrong."""
    return "\n".join(f"{source} line {line_of(root, loc)}, {field_name(loc)}: {msg}" for loc, msg in problems[:10])


def field_name(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(node: yaml.Node | None, loc: Loc) -> int:
    """The line (1-based) of the deepest part of ``loc`` that the YAML has."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            continue  # pydantic names a union member or a validator the file has no level for
        node = child
    return line
