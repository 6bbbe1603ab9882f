"""analysis stage (see docs/architecture.md)."""
