"""Runnable example services; each module's docstring says how to run it."""
