"""Instrument interfaces and one module per instrument family.

Vendor bridges (Gamry, BioLogic) are Windows-only and imported lazily by their modules.
"""
