"""Settings as dataclass fields that check themselves and make the command line.

A config is a dataclass whose fields are declared with ``option``: the default, the help text, the
allowed values (choices, bounds) and, where it differs from the field's name, the flag, all written
once beside the field. From that one declaration:

- ``check(config)`` (call it from ``__post_init__``) refuses a bad value with a ``ConfigError`` that
  names the field: ``lr must be a finite float > 0, got 0.0``;
- ``add_flags(parser, Config)`` adds one flag per field to an ``argparse`` parser, with the help
  text and the default, and ``given(namespace, Config)`` reads back the fields whose flags were
  given (absent flags stay absent, so a resumed run can keep its saved settings);
- the command line turns a ``ConfigError`` into a one-line error naming the flag
  (``argument --clip: clip_grad_norm must be ...``).

We wrote this (about 200 lines) rather than take tyro, simple-parsing or jsonargparse: those derive
nested or prefixed flag names (``--model.num-layers``) where rnnkit's flags are part of its
interface (``--layers``, ``--clip 0`` for no clipping, ``--no-lowercase``), they would put a
dependency and its import time in front of every ``--help``, and their errors are not our one-line
errors. Standard library only: importing this module never imports torch.

Example::

    @dataclass
    class Sampling:
        temperature: float = option(0.8, help="sampling temperature, 0 is greedy", min=0)
        top_k: Optional[int] = option(None, help="sample among the k likeliest tokens", min=1,
                                      default_text="all")

        def __post_init__(self):
            check(self)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional

_MISSING = dataclasses.MISSING


class Shown(str):
    """A default as ``--help`` should say it, given in ``add_flags(defaults=...)`` where the default is
    a rule rather than a value: ``Shown("cosine with --max-steps, else constant")``."""


class UsageError(ValueError):
    """Arguments that cannot go together (``--explain`` with an ensemble): the command line's usage
    error, exit code 2."""


class ConfigError(ValueError):
    """A setting outside what its field allows. ``field`` names it; the message says what is allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def option(default: Any = _MISSING, *, help: str, flag: Optional[str] = None, choices: Optional[tuple] = None,
           min: Optional[float] = None, max: Optional[float] = None, above: Optional[float] = None,
           below: Optional[float] = None, parse: Optional[Callable[[str], Any]] = None,
           valid: Optional[Callable[[Any], Any]] = None, default_text: Optional[str] = None,
           metavar: Optional[str] = None, const: Optional[bool] = None, cli: bool = True) -> Any:
    """A dataclass field with its help text, its allowed values and its command-line form.

    Args:
        default: the default value (omit for a required field, such as a size the data fixes).
        help: one phrase for ``--help``; ``(default: ...)`` is appended.
        flag: the flag, if not ``--`` + the name with dashes; for a boolean whose default is True,
            the flag that turns it off (default ``--no-NAME``).
        choices: the allowed values. min, max: inclusive bounds; above, below: exclusive bounds.
        parse: turns the flag's text into the value (default: by the field's type; for example
            ``--clip 0`` meaning None is a ``parse``).
        valid: a further check of a (non-None) value, raising ValueError with the reason
            (``rnnkit.files.check_encoding`` for a text encoding).
        default_text: how ``--help`` shows the default (for example "every word" for None; a
            boolean flag shows "off": it is not given by default).
        metavar: the placeholder ``--help`` shows for the value.
        const: the value a boolean flag sets (default: True, or False where the default is True).
        cli: False for a field with no flag (a size that the data or another model fixes).
    """
    metadata = dict(help=help, flag=flag, choices=choices, min=min, max=max, above=above, below=below,
                    parse=parse, valid=valid, default_text=default_text, metavar=metavar, const=const, cli=cli)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# --- checking ----------------------------------------------------------------------------------------

def check(config) -> None:
    """Check every ``option`` field of the dataclass instance ``config``; ConfigError on the first bad one."""
    for f in dataclasses.fields(config):
        if "help" in f.metadata:
            check_value(type(config), f.name, getattr(config, f.name))


def check_value(cls: type, name: str, value: Any) -> None:
    """Check one value for field ``name`` of dataclass ``cls``; ConfigError naming the field if it is bad."""
    f, kind = _field(cls, name), _types(cls)[name]
    meta, optional, base = f.metadata, _is_optional(kind), _base(kind)
    if value is None:
        if optional:
            return
        raise ConfigError(name, f"{name} must be set, got None")
    if meta["choices"] is not None:
        if value not in meta["choices"]:
            raise ConfigError(name, f"{name} must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}")
        return
    what = _describe(meta, base, optional)
    if _is_list(base):
        item = typing.get_args(base)[0]
        if not isinstance(value, (list, tuple)) or not all(_scalar_ok(v, item, meta) for v in value):
            raise ConfigError(name, f"{name} must be {what}, got {value!r}")
    elif not _scalar_ok(value, base, meta):
        raise ConfigError(name, f"{name} must be {what}, got {value!r}")
    if meta["valid"] is not None:
        try:
            meta["valid"](value)
        except ValueError as error:
            message = str(error)
            raise ConfigError(name, message if name in message else f"{name}: {message}") from None


def _scalar_ok(value, kind, meta: dict) -> bool:
    """Whether ``value`` is a ``kind`` (bool, str, int or float) within the field's bounds."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is str:
        return isinstance(value, str) and bool(value)
    number = _is_int(value) if kind is int else (_is_int(value) or isinstance(value, float))
    return number and math.isfinite(value) and _in_bounds(value, meta)


def _describe(meta: dict, base, optional: bool) -> str:
    if _is_list(base):
        item = typing.get_args(base)[0]
        text = "a list of " + _describe(meta, item, False).replace("a finite ", "finite ").replace(
            "a non-empty string", "non-empty strings").replace("int", "ints", 1).replace("float", "floats", 1)
    elif base is bool:
        text = "True or False"
    elif base is str:
        text = "a non-empty string"
    else:
        bounds = [f"{sign} {meta[key]}" for key, sign in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<"))
                  if meta[key] is not None]
        text = f"a finite {'int' if base is int else 'float'}" + (f" {' and '.join(bounds)}" if bounds else "")
    return text + (" or None" if optional else "")


def _is_list(kind) -> bool:
    return typing.get_origin(kind) in (list, tuple)


def _in_bounds(value, meta: dict) -> bool:
    return ((meta["min"] is None or value >= meta["min"]) and (meta["max"] is None or value <= meta["max"])
            and (meta["above"] is None or value > meta["above"]) and (meta["below"] is None or value < meta["below"]))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- the command line --------------------------------------------------------------------------------

def flag_of(cls: type, name: str) -> str:
    """The flag of field ``name`` of dataclass ``cls``."""
    f = _field(cls, name)
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    if _base(_types(cls)[name]) is bool and f.default is True:
        return "--no-" + name.replace("_", "-")
    return "--" + name.replace("_", "-")


def flags(cls: type) -> Dict[str, str]:
    """``{field name: flag}`` of every field of ``cls`` that has a flag."""
    return {f.name: flag_of(cls, f.name) for f in dataclasses.fields(cls) if f.metadata.get("cli")}


def add_flags(parser: argparse.ArgumentParser, cls: type, *, defaults: Optional[dict] = None,
              title: Optional[str] = None) -> None:
    """Add a flag for every field of ``cls`` that has one (in field order).

    ``defaults`` overrides the defaults shown in ``--help`` (a task's own defaults for the engine,
    say; a ``Shown`` text for a default that is a rule); values are not set on the namespace: read
    them back with ``given``. A flag the parser has already (two tasks' option classes may share
    one, such as ``--bptt``) is added once; it must be declared with the same help text.
    """
    group = parser.add_argument_group(title) if title else parser
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli"):
            continue
        meta, kind, dest = f.metadata, _types(cls)[f.name], _dest(cls, f.name)
        existing = parser._option_string_actions.get(flag_of(cls, f.name))
        if existing is not None:
            if not existing.help.startswith(meta["help"] + " (default:"):
                raise ValueError(f"{flag_of(cls, f.name)} ({cls.__name__}.{f.name}) is declared twice with "
                                 f"different meanings")
            continue
        switch = _base(kind) is bool and meta["parse"] is None
        if f.name in defaults:
            default = _default_text(defaults[f.name])
        else:
            default = meta["default_text"] or ("off" if switch else _default_text(f.default))
        common = dict(dest=dest, default=argparse.SUPPRESS, help=f"{meta['help']} (default: {default})".replace("%", "%%"))
        if switch:
            const = meta["const"] if meta["const"] is not None else f.default is not True
            group.add_argument(flag_of(cls, f.name), action="store_const", const=const, **common)
            continue
        metavar = meta["metavar"] or (None if meta["choices"] else f.name.upper())
        group.add_argument(flag_of(cls, f.name), type=_parser(cls, f.name), metavar=metavar,
                           choices=meta["choices"] if meta["parse"] is None else None, **common)


def given(namespace: argparse.Namespace, cls: type) -> dict:
    """``{field: value}`` of the fields of ``cls`` whose flags were given on the command line."""
    found = vars(namespace)
    return {name: found[_dest(cls, name)] for name in flags(cls) if _dest(cls, name) in found}


def _default_text(value) -> str:
    if isinstance(value, Shown):
        return str(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _dest(cls: type, name: str) -> str:
    return "option" + flag_of(cls, name)            # one dest per flag: classes that share a flag share its value


def _parser(cls: type, name: str) -> Callable[[str], Any]:
    """The function argparse calls on the flag's text: it reads a value of the field's type, and an
    integer is checked against its bounds too (a text that is not such a value is a usage error,
    exit 2, as counts like ``--batch-size 0`` always were). Other values are checked by the config
    when it is built (``check``), and the command line names the flag of a bad one."""
    meta, base = _field(cls, name).metadata, _base(_types(cls)[name])
    read = meta["parse"] or (_list_reader(typing.get_args(base)[0]) if _is_list(base) else
                             {int: _read_int, float: _read_float, str: str}[base])

    def parse(text: str):
        try:
            value = read(text)
            if (base is int or _is_list(base) and typing.get_args(base)[0] is int) and value is not None:
                check_value(cls, name, value)
        except ValueError as error:                      # a parse function's or the bounds' reason
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = {int: "int", float: "float", str: "str"}.get(base, name)     # argparse's messages use it
    return parse


def _read_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _read_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _list_reader(item) -> Callable[[str], list]:
    """Reads comma-separated ``item`` values (``2000,5000``, ``0.1,0.5,0.9``, ``price,promo``)."""
    read = {int: _read_int, float: _read_float, str: str.strip}[item]
    example = {int: "2000,5000", float: "0.1,0.5,0.9", str: "price,promo"}[item]

    def parse(text: str) -> list:
        try:
            return [read(part) for part in text.split(",")]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__} values such as {example}, "
                                             f"got {text!r}") from None

    return parse


# --- reading the declarations ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _types(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _is_optional(kind) -> bool:
    return typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)


def _base(kind):
    """``int`` of ``Optional[int]``; ``List[int]`` stays itself."""
    if _is_optional(kind):
        return next(arg for arg in typing.get_args(kind) if arg is not type(None))
    return kind
