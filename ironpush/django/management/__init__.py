"""Django looks for management commands in this package."""
