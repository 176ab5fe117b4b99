"""Pure logic, no I/O: the quick loop (`pytest -m unit`)."""
