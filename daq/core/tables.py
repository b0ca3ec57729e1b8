"""Reading the tables of a user's TOML file (protocol, cell), naming the dotted field in every error.

Every key a reader asks for is remembered, present or not, so ``finish()`` can refuse the keys nobody
asked for (typos such as ``curent_density``) and list the fields that would have been understood.
"""

from __future__ import annotations

from typing import Any

from daq.core import units as u
from daq.core.errors import ConfigError


class ConfigTable:
    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ConfigError(path or "file", data, "must be a table")
        self.data, self.path, self.used = data, path, set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def sub(self, key: str, required: bool = True) -> ConfigTable:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(self.at(key), None, "missing table")
            return ConfigTable({}, self.at(key))
        return ConfigTable(self.data[key], self.at(key))

    def quantity(
        self, key: str, kind: u.Kind, default: float | None = None, *, required: bool = False, positive: bool = True
    ) -> float | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(self.at(key), None, f'missing; give a {kind.name}, e.g. "{kind.example}"')
            return default
        value = u.parse(self.data[key], kind, self.at(key))
        if positive and not value > 0:
            raise ConfigError(self.at(key), self.data[key], f"must be a positive {kind.name}")
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise ConfigError(self.at(key), None, "missing; give a whole number")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.at(key), value, "must be a whole number")
        if value < minimum:
            raise ConfigError(self.at(key), value, f"must be at least {minimum}")
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        self.used.add(key)
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value < hi:
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
            raise ConfigError(self.at(key), None, f"missing; one of {', '.join(options)}")
        if value not in options:
            raise ConfigError(self.at(key), value, f"must be one of {', '.join(options)}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise ConfigError(self.at(key), None, "missing")
        if not isinstance(value, str):
            raise ConfigError(self.at(key), value, "must be text")
        return value

    def finish(self) -> None:
        """Refuse keys nobody asked for."""
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ConfigError(
                self.at(extra[0]), self.data[extra[0]], f"unknown field; expected one of {', '.join(sorted(self.used))}"
            )
