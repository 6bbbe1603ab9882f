"""receive stage (see docs/architecture.md)."""
