"""Turning pydantic's validation errors into the one message a sysadmin can act on.

pydantic reports every error, with locations that include union branches
("check", 0, "pop3", "port") and messages written for programmers ("Input
should be a valid dictionary or instance of ScriptSpec"). `explain` picks the
error that comes first in the file (the most specific one at that line),
merges the branches of a union into one message, and words it in TOML terms:
keys, tables, strings in quotes.
"""

import difflib
import json
import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from failoverd.config.locate import KeyPath, dotted, locate
from failoverd.config.schema import FieldError

_TYPE_WORDS = {
    "string_type": "a string in quotes",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list [...]",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "path_type": "a path in quotes",
}
_PROGRAMMER_WORDS = (
    ("Value error, ", ""),
    ("Input should be", "must be"),
    ("String should", "must"),
    ("List should", "must"),
    ("Value should", "must"),
    (" after validation", ""),
)
_KEY_ERRORS = ("missing", "extra_forbidden")


def _members(tp: Any) -> list[Any]:
    """The types a value of annotation `tp` may have (Annotated and unions unwrapped)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _members(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _models(candidates: list[Any]) -> list[type[BaseModel]]:
    return [t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)]


def _tags(model: type[BaseModel]) -> set[str]:
    """The names pydantic gives a union branch: the class name, or its `type` literal."""
    tags = {model.__name__}
    field = model.model_fields.get("type")
    if field is not None and get_origin(field.annotation) is Literal:
        tags.update(str(a) for a in get_args(field.annotation))
    return tags


def _walk(root: type[BaseModel], loc: Sequence[str | int]) -> tuple[KeyPath, list[Any]]:
    """`loc` without union tags, and the types possible at its end."""
    path: KeyPath = ()
    here: list[Any] = [root]
    for element in loc:
        if isinstance(element, int):
            items = [get_args(t)[0] for t in here if get_origin(t) is list]
            path, here = (*path, element), [m for t in items for m in _members(t)]
            continue
        owner = next((m for m in _models(here) if element in m.model_fields), None)
        if owner is not None:
            path, here = (*path, element), _members(owner.model_fields[element].annotation)
        else:  # a union tag: narrow to that branch
            here = [m for m in _models(here) if element in _tags(m)] or here
    return path, here


def _full_loc(err: ErrorDetails) -> KeyPath:
    """The error's location, extended by a FieldError's own key path."""
    exc = err.get("ctx", {}).get("error")
    return (*err["loc"], *exc.loc) if isinstance(exc, FieldError) else tuple(err["loc"])


def _given(err: ErrorDetails, path: KeyPath) -> str:
    """The input as ", not VALUE" (a scalar unless the key may hold a secret)."""
    value = err.get("input")
    if isinstance(value, list | dict):
        return ", not a list" if isinstance(value, list) else ", not a table"
    private = any(isinstance(p, str) and ("secret" in p or "password" in p) for p in path)
    if private or not isinstance(value, str | int | float | bool):
        return ""
    return f", not {json.dumps(value)}"


def _plain(msg: str) -> str:
    for old, new in _PROGRAMMER_WORDS:
        msg = msg.replace(old, new)
    return msg


class _Group:
    """The errors pydantic reports for one key (several when the key is a union)."""

    def __init__(self, path: KeyPath, owner: list[Any]) -> None:
        self.path = path
        self.owner = owner
        self.errors: list[tuple[ErrorDetails, KeyPath]] = []

    def pick(self) -> tuple[ErrorDetails, KeyPath]:
        """A value_error carries our own explanation: the most telling branch of a union."""
        return next(
            ((e, loc) for e, loc in self.errors if e["type"] == "value_error"), self.errors[0]
        )

    def message(self) -> tuple[KeyPath, str]:
        err, loc = self.pick()
        kind = err["type"]
        where = dotted(self.path)
        exc = err.get("ctx", {}).get("error")
        if isinstance(exc, FieldError):
            model_path = self.path[: len(self.path) - len(exc.loc)]
            return loc, f"{dotted(model_path)}: {exc}" if model_path else str(exc)
        if kind == "value_error":
            alternatives = [
                e["ctx"]["expected"] for e, _ in self.errors if e["type"] == "literal_error"
            ]
            also = f" (or {' or '.join(alternatives)})" if alternatives else ""
            return loc, f"{where}: {_plain(err['msg'])}{also}"
        if kind in _KEY_ERRORS:
            return loc, self._key_message(kind)
        if kind == "union_tag_not_found":
            return loc, f"{where}: missing key 'type': add type = one of {self._type_tags()}"
        if kind == "union_tag_invalid":
            return (*loc, "type"), (
                f"{where}.type: unknown type {json.dumps(err['ctx']['tag'])}: "
                f"use one of {self._type_tags()}"
            )
        words = [_TYPE_WORDS[e["type"]] for e, _ in self.errors if e["type"] in _TYPE_WORDS]
        if words:
            return loc, f"{where}: must be {' or '.join(dict.fromkeys(words))}{_given(err, loc)}"
        return loc, f"{where}: {_plain(err['msg'])}{_given(err, loc)}"

    def _type_tags(self) -> str:
        tags = [
            str(get_args(m.model_fields["type"].annotation)[0])
            for m in _models(self.owner)
            if "type" in m.model_fields
        ]
        return ", ".join(tags)

    def _key_message(self, kind: str) -> str:
        parent, key = self.path[:-1], str(self.path[-1])
        table = f"in [{dotted(parent)}]" if parent else "at the top level"
        owners = _models(self.owner)
        fields = owners[0].model_fields if owners else {}
        if kind == "missing":
            field = fields.get(key)
            sub = _models(_members(field.annotation)) if field is not None else []
            if not parent and sub:
                needed = [n for n, f in sub[0].model_fields.items() if f.is_required()]
                return f"missing section [{key}]: add it, with {', '.join(needed)}"
            about = f" {field.description}" if field is not None and field.description else ""
            return f"missing key {key!r} {table}: add it.{about}"
        close = difflib.get_close_matches(key, list(fields), n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(fields)}"
        return f"unknown key {key!r} {table}: {fix} (misspelt keys are never ignored)"


def explain(
    root: type[BaseModel], errors: Sequence[ErrorDetails], text: str
) -> tuple[KeyPath, str]:
    """The location and message of the most useful of `errors` about TOML `text`.

    That is the error found first in the file; at one line, the most specific
    key; union branches at one key are merged into one message. Missing keys
    come last: they point at their table's header only, and a misspelt key
    ("did you mean ...?") usually explains them.
    """
    groups: dict[KeyPath, _Group] = {}
    for err in errors:
        loc = _full_loc(err)
        if err["type"] in _KEY_ERRORS:
            parent, owner = _walk(root, loc[:-1])
            path = (*parent, loc[-1])
        else:
            path, owner = _walk(root, loc)
        groups.setdefault(path, _Group(path, owner)).errors.append((err, loc))
    best = min(
        groups.values(),
        key=lambda g: (
            g.errors[0][0]["type"] == "missing",
            min(locate(text, loc) for _, loc in g.errors),
            -len(g.path),
        ),
    )
    return best.message()
