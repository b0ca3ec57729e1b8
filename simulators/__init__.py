"""Simulated instruments, the physics twin of the cell, emulated vendor bridges and wire protocols."""
