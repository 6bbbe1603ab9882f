"""rca stage (see docs/architecture.md)."""
