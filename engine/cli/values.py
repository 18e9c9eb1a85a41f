"""The CLI's argparse ``type=`` checks: each option's value refused, in one line, as it is parsed."""
from __future__ import annotations

import argparse
import importlib
import math
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _run_folder(value: str) -> Path:
    """A folder that is no store, or a path nothing is at yet (a run the trainer has not created)."""
    from stores.format import is_store

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a directory")
    if not path.exists():  # waited for, unless it lies below a file: it never comes (waited for ever)
        where = next(parent for parent in path.absolute().parents if parent.exists())
        if not where.is_dir():
            raise argparse.ArgumentTypeError(f"{value}: {where} is a file, not a directory; give the run's folder")
    if is_store(path):
        raise argparse.ArgumentTypeError(f"{value}: is an evowatch store, not a training run: watch the folder the "
                                         f"trainer writes its samples to (`evowatch view {value}` shows this store)")
    return path


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {'not a directory' if path.exists() else 'no such directory'}")
    return path


def _number(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for a finite number in [low, high]: "--workers -3" crashed in the
    decode pool, "--settle nan" waited "nans", "--thumbnail-size 100000" allocated for ever."""
    def convert(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or number < low or (high is not None and number > high):
            said = (lambda v: str(int(v))) if kind is int else (lambda v: f"{v:g}")
            span = f"from {said(low)} to {said(high)}" if high is not None else f"of at least {said(low)}"
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a finite number'} {span}, got {value!r}")
        return number

    convert.__name__ = kind.__name__
    return convert


def _parsed_by(module: str, name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` from a ``parse_*`` function, imported when a value comes (keeps
    ``--help`` fast). Its ValueError becomes "argument --grid: Expected ..." (argparse
    itself would only say "invalid value")."""
    def convert(value: str) -> Any:
        try:
            return getattr(importlib.import_module(module), name)(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def _encoder_spec(value: str) -> str:
    """An argparse ``type=`` for the demo's ``--encoder``: checked before anything is trained
    (a typo was found 9 s into training, its folders left behind), kept as typed."""
    _parsed_by("engine.encoders", "parse_encoder_spec")(value)
    return value


def _regex(value: str) -> str:
    """An argparse ``type=`` for ``--step-regex``: said as the option, the pattern as typed."""
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{value} is no regular expression ({exc}); e.g. 'iter_(\\d+)'") from None
    return value


def _ready_file(value: str) -> str:
    """An argparse ``type=`` for ``--ready-file``: its placeholders are known ones (an unknown
    one ended the watch with a KeyError at the first checkpoint)."""
    try:
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None and field not in ("stem", "name", "step"):  # {stem.upper} filled in a method's repr
                raise KeyError(field)
        value.format(stem="s", name="n", step=0)
    except (KeyError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{value!r} cannot be filled in ({type(exc).__name__}: {exc}); its "
                                         "placeholders are {stem}, {name} and {step} (write {{ and }} for braces)") from None
    return value
