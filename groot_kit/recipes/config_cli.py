"""Command lines generated from config dataclasses: one flag per field, its help the field's comment.

    @dataclass
    class MyConfig:
        steps: int = 1200          # training steps
        lr: float = 1e-3           # AdamW learning rate
    p = argparse.ArgumentParser(); add_config_arguments(p, MyConfig)
    cfg = config_from_args(MyConfig, p.parse_args())

`--help` shows every default. Types: int, float, str, bool (`--x / --no-x`), `X | None` (the word
`none` gives None), lists and tuples (comma-separated), dicts (`k=v,k=v`), and nested dataclasses (flags prefixed by the field
name, e.g. `--task-embodiment`, unless the field's metadata says flatten=True).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from typing import Any

def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command a results file records: ``python <script> <flags>`` (``argv``: sys.argv[1:] if None)."""
    import sys
    return " ".join(["python", script, *(sys.argv[1:] if argv is None else argv)])


_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")
_CONTINUED = re.compile(r"^\s+#\s*(.+?)\s*$")


def field_comments(cls) -> dict[str, str]:
    """{field: the comment on its line and the comment-only lines under it} from the dataclass's
    source (empty when unavailable)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        last = None   # a comment-only line right below a field continues that field's comment
        for line in src.splitlines():
            m = _COMMENT.match(line)
            more = _CONTINUED.match(line)
            if m:
                last = m.group(1)
                out[last] = m.group(2)
            elif more and last is not None:
                out[last] += " " + more.group(1)
            else:
                last = None
    return out


def _unwrap_optional(tp) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
        return str, True    # e.g. int | str: keep the text, the config's __post_init__ interprets it
    return tp, False


def _parser_for(tp, optional: bool, name: str):
    origin = typing.get_origin(tp)
    if tp is dict or origin is dict:
        val = (typing.get_args(tp) or (str, float))[1]
        val = val if val in (int, float, str) else float

        def parse_dict(s: str):
            if optional and s.lower() == "none":
                return None
            try:
                return {k.strip(): val(v) for k, v in (kv.split("=", 1) for kv in s.split(",") if kv.strip())}
            except ValueError:
                raise argparse.ArgumentTypeError(f"--{name}: {s!r}: write NAME=VALUE[,NAME=VALUE...]") from None
        return parse_dict
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)   # tuple[str, ...] too
        item = item if item in (int, float, str) else str

        def parse_list(s: str):
            if optional and s.lower() == "none":
                return None
            return [item(x) for x in s.split(",") if x.strip()]
        return parse_list
    base = tp if tp in (int, float, str) else str

    def parse(s: str):
        if optional and s.lower() == "none":
            return None
        try:
            return base(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name}: {s!r} is not a valid {base.__name__}") from None
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls, prefix: str = "", skip: tuple[str, ...] = (),
                         group_title: str | None = None, defaults=None) -> None:
    """One flag per field of dataclass `cls` (defaults shown in --help; from the instance `defaults` if given)."""
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls)
    group = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        dest = (prefix + f.name).replace("-", "_")
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp, optional = _unwrap_optional(hints[f.name])
        help_ = notes.get(f.name, "")
        if dataclasses.is_dataclass(tp):   # metadata flatten=True: the inner flags keep their own names
            inner = prefix if f.metadata.get("flatten") else f"{prefix}{f.name}_"
            add_config_arguments(parser, tp, prefix=inner, group_title=f"{f.name} ({tp.__name__})",
                                 skip=tuple(f.metadata.get("skip", ())), defaults=default)
            continue
        if isinstance(default, dict):
            shown = ",".join(f"{k}={v}" for k, v in default.items()) or "{}"
        else:
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        help_ = f"{help_} (default: {shown})" if help_ else f"(default: {shown})"
        if tp is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default,
                               help=help_.replace("%", "%%"))
        else:
            group.add_argument(flag, dest=dest, type=_parser_for(tp, optional, f.name), default=default,
                               metavar=("K=V,..." if tp is dict or typing.get_origin(tp) is dict else
                                        tp.__name__.upper() if isinstance(tp, type) else "A,B,..."),
                               help=help_.replace("%", "%%"))


def config_from_args(cls, args: argparse.Namespace, prefix: str = "", base=None):
    """The dataclass the flags describe (nested dataclasses included); `base` supplies other defaults."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        dest = (prefix + f.name).replace("-", "_")
        if dataclasses.is_dataclass(tp):
            inner_base = getattr(base, f.name) if base is not None else None
            inner = prefix if f.metadata.get("flatten") else f"{prefix}{f.name}_"
            values[f.name] = config_from_args(tp, args, inner, inner_base)
        elif hasattr(args, dest):
            values[f.name] = getattr(args, dest)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)
