"""The package version, in a module of its own: the client's ``User-Agent`` reads it without
importing the facade (which imports the client), and the build reads it from here."""

__version__ = "0.1.0"
