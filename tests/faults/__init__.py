"""Fault injection on the real stack: nothing lost, no drift invented."""
