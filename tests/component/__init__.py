"""One subsystem against a real local service."""
