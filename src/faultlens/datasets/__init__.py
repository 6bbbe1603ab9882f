"""datasets stage (see docs/architecture.md)."""
