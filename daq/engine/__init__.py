"""Orchestration: the engine loop, the runner, safety monitors, interlocks, campaigns, replay, rig files."""
