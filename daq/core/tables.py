"""Reading the tables of a user's TOML file (protocol, cell, rig, notify, campaign), naming the dotted
field in every error.

Every key a reader asks for is remembered, present or not, so ``finish()`` can refuse the keys nobody
asked for (typos such as ``curent_density``) and list the fields that would have been understood.
A field reported missing while an unknown key that looks like it is present is reported as that
unknown key instead ("did you mean"), since a typo is the likelier cause.

:func:`read_user_file` and :func:`parse_toml` are the one way user files are read: only regular files
of bounded size (never ``/dev/zero`` or a FIFO), TOML of bounded nesting, whole numbers that fit 64 bits
and no NUL characters, so a hostile or mistaken file is refused in one line instead of hanging or
exhausting memory.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest protocol in the lab is a few kB
MAX_DEPTH = 32  # tables and arrays nested inside each other
MAX_INT = (1 << 63) - 1


def read_user_file(path: str | Path, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a user's file; ConfigError unless it is a readable regular file of at most
    ``limit`` bytes. The size is checked on the open file, so a file growing meanwhile is cut off."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ConfigError(what, str(path), "file not found") from None
    except IsADirectoryError:
        raise ConfigError(what, str(path), "is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(what, str(path), f"cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(what, str(path), "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(what, str(path), "is not a regular file (a device, pipe or socket); give a file")
        if info.st_size > limit:
            raise ConfigError(what, str(path), f"is {info.st_size} bytes, larger than the {limit} bytes allowed")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(what, str(path), f"cannot be read: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise ConfigError(what, str(path), f"is larger than the {limit} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"cannot be read: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError(what, str(path), problem) from None


def _nesting(text: str) -> int:
    """Deepest bracket nesting outside strings and comments (a bound checked before parsing, so a
    deeply nested file never reaches the recursive parser)."""
    depth = deepest = 0
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def _check_values(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(where or "file", None, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\0" in key:
                raise ConfigError(where or "file", key, "a name must not contain NUL characters")
            _check_values(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value, 1):
            _check_values(item, f"{where}.{i}", depth + 1)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise ConfigError(where, value, "whole number too large (beyond 64 bits)")
    elif isinstance(value, str) and "\0" in value:
        raise ConfigError(where, value.replace("\0", "\\0")[:60], "must not contain NUL characters")


def parse_toml(text: str, what: str, source: str) -> dict[str, Any]:
    """Parse TOML text of a user file with the bounds above; ConfigError naming ``source`` otherwise."""
    if "\0" in text:
        raise ConfigError(what, source, "not a TOML text file (contains NUL characters)")
    if _nesting(text) > MAX_DEPTH:
        raise ConfigError(what, source, f"not accepted: tables or arrays nested deeper than {MAX_DEPTH} levels")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(what, source, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(what, source, "not accepted: nested too deeply") from None
    try:
        _check_values(doc, "")
    except ConfigError as exc:
        raise exc.located(source) from None
    return doc


def read_toml(path: str | Path, what: str) -> tuple[str, dict[str, Any]]:
    """(text, document) of a user's TOML file, read and parsed with every bound above."""
    text = read_user_file(path, what)
    return text, parse_toml(text, what, str(path))


def suggest(word: str, choices: Any) -> str:
    """``"; did you mean X?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def unknown_text(key: str, allowed: Any) -> str:
    """The problem text for an unknown field: the likely intended one first, then all of them."""
    names = ", ".join(sorted(allowed))
    hint = suggest(key, allowed)
    return f"unknown field{hint}" if hint else f"unknown field; expected one of {names}"


def _bounds_text(lo: float | None, hi: float | None, unit: str | None) -> str:
    show = (lambda v: u.fmt(v, unit)) if unit else (lambda v: f"{v:g}")
    if lo is not None and hi is not None:
        return f"must be between {show(lo)} and {show(hi)}"
    return f"must be at most {show(hi)}" if hi is not None else f"must be at least {show(lo)}"


class ConfigTable:
    """One table of a user's file; ``path`` is its dotted name (``steps.2``), "" for the root."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ConfigError(path or "file", None if isinstance(data, (list, tuple)) else data, "must be a table")
        self.data, self.path, self.used = data, path, set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def missing(self, key: str, problem: str, alternatives: tuple[str, ...] = ()) -> ConfigError:
        """The error for a missing ``key`` (or any of its ``alternatives``), or for the unknown key that
        is probably its misspelling."""
        for wanted in (key, *alternatives):
            strays = [k for k in self.data if k not in self.used and k != wanted]
            close = difflib.get_close_matches(wanted, strays, n=1, cutoff=0.75)
            if close:
                return ConfigError(self.at(close[0]), None, f"unknown field; did you mean {wanted}?")
        return ConfigError(self.at(key), None, problem)

    def sub(self, key: str, required: bool = True) -> ConfigTable:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.missing(key, "missing table")
            return ConfigTable({}, self.at(key))
        return ConfigTable(self.data[key], self.at(key))

    def quantity(
        self,
        key: str,
        kind: u.Kind | tuple[u.Kind, ...],
        default: float | None = None,
        *,
        required: bool = False,
        positive: bool = True,
        lo: float | None = None,
        hi: float | None = None,
        unit: str | None = None,
    ) -> float | None:
        """A quantity with its unit in SI; ``kind`` may list several kinds (the first that fits wins);
        ``lo``/``hi`` bound it (shown in ``unit``); ``positive`` refuses zero and negative values."""
        self.used.add(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if key not in self.data:
            if required:
                raise self.missing(key, f'missing; give a {kinds[0].name}, e.g. "{kinds[0].example}"')
            return default
        text = self.data[key]
        value, chosen = self._parse(key, kinds)
        if positive and not value > 0:
            raise ConfigError(self.at(key), text, f"must be a positive {chosen.name}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(self.at(key), text, _bounds_text(lo, hi, unit or chosen.display))
        return value

    def _parse(self, key: str, kinds: tuple[u.Kind, ...]) -> tuple[float, u.Kind]:
        text, first = self.data[key], None
        for kind in kinds:
            try:
                return u.parse(text, kind, self.at(key)), kind
            except ConfigError as exc:
                first = first or exc
        if len(kinds) > 1:
            raise ConfigError(
                self.at(key),
                text,
                f'expected a {" or ".join(k.name for k in kinds)} with its unit, e.g. "{kinds[0].example}"',
            )
        raise first  # type: ignore[misc]

    def integer(self, key: str, default: int | None = None, minimum: int | None = 1, maximum: int | None = None) -> int:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise self.missing(key, "missing; give a whole number")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.at(key), value, "must be a whole number")
        if minimum is not None and value < minimum:
            raise ConfigError(self.at(key), value, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.at(key), value, f"must be at most {maximum}")
        return value

    def number(self, key: str, default: float | None, lo: float = -math.inf, hi: float = math.inf) -> float | None:
        """A plain finite number strictly between ``lo`` and ``hi`` (None when absent without default)."""
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(self.at(key), value, "must be a finite number")
        if not lo < value < hi:
            raise ConfigError(self.at(key), value, f"must be a number between {lo:g} and {hi:g}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        self.used.add(key)
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self.at(key), value, "must be true or false")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise self.missing(key, f"missing; one of {', '.join(options)}")
        if value not in options:
            raise ConfigError(self.at(key), value, f"must be one of {', '.join(options)}{suggest(value, options)}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = True, nonempty: bool = False) -> Any:
        """Text; None when absent, without default and not ``required``."""
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            if required:
                raise self.missing(key, "missing")
            return None
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise ConfigError(self.at(key), value, "must be non-empty text" if nonempty else "must be text")
        return value

    def strings(self, key: str, required: bool = False) -> tuple[str, ...] | None:
        """A non-empty list of non-empty text (a single text counts as a list of one)."""
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.missing(key, 'missing; give a list of text, e.g. ["a", "b"]')
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(
                self.at(key), value if not isinstance(value, dict) else None, "must be a non-empty list of text"
            )
        return tuple(value)

    def unknown(self, allowed: set[str] | tuple[str, ...], show_value: bool = True) -> None:
        """Refuse keys outside ``allowed`` now (for tables whose fields are read on demand)."""
        self.used.update(allowed)
        for key in self.data:
            if key not in allowed:
                raise ConfigError(
                    self.at(key),
                    self.data[key] if show_value else None,
                    unknown_text(key, allowed),
                )

    def refuse_unknown(self, known: set[str] | frozenset[str] | tuple[str, ...]) -> None:
        """Refuse, before anything is reported missing, keys that no variant of this table knows (a typo
        hides the field it meant, so it is the error to show first)."""
        for key in self.data:
            if key not in known:
                raise ConfigError(self.at(key), self.data[key], unknown_text(key, known))

    def finish(self) -> None:
        """Refuse keys nobody asked for."""
        extra = sorted(set(self.data) - self.used)
        if extra:
            key = extra[0]
            raise ConfigError(
                self.at(key),
                self.data[key],
                unknown_text(key, self.used),
            )
