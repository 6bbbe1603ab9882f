"""testing stage (see docs/architecture.md)."""
