"""pipeline stage (see docs/architecture.md)."""
