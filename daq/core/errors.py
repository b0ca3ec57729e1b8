"""Errors the product reports to operators: each names what is wrong in one line."""

from __future__ import annotations


class DaqError(Exception):
    """Base of every error meant for the operator (the CLI prints it as one line, exit code 2)."""


class ConfigError(DaqError):
    """A protocol, cell, rig file or CLI value is wrong; raised before any current flows."""

    def __init__(self, field: str, value: object, problem: str, source: str | None = None):
        self.field, self.value, self.problem, self.source = field, value, problem, source
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.source}: " if self.source else ""
        shown = f" = {self.value!r}" if self.value is not None else ""
        return f"{where}{self.field}{shown}: {self.problem}"

    def located(self, source: str) -> ConfigError:
        """The same error, prefixed with the file it came from."""
        return ConfigError(self.field, self.value, self.problem, source)


class InstrumentError(DaqError):
    """An instrument refused, timed out or answered nonsense; the cell has been made safe if possible."""


class DataFileError(DaqError):
    """A run or vendor data file cannot be read; names the file and what could not be read."""
