"""decode stage (see docs/architecture.md)."""
