"""Switching threadtrace on and steering it: ``configure()``, ``patch()``, and the exit."""
