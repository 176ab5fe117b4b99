"""The whole stack, end to end, as an operator runs it."""
