"""Step primitives, the lab's protocols, the protocol file loader and example files."""
