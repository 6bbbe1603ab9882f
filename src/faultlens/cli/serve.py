"""``faultlens serve``: registered once the server wiring exists."""
