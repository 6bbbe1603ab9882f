"""``faultlens demo``: a server of its own fed a small shop's telemetry with one fault (:mod:`.shop`)."""
