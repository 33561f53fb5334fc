"""clipsearch: local semantic photo search for the command line."""

__version__ = "0.1.0"
