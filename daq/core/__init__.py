"""The kernel: units, errors, clock, sample blocks, records, capability Protocols, the table reader.

Imports nothing from the rest of the product."""
