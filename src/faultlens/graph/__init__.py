"""graph stage (see docs/architecture.md)."""
