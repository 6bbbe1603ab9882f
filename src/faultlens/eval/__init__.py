"""eval stage (see docs/architecture.md)."""
