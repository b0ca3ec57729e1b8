"""Instrument control and data acquisition for Li-metal / ceramic-electrolyte cell testing."""

__version__ = "0.1.0"
