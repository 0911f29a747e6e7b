"""pgdoctor: PostgreSQL diagnostics for the person on call."""

__version__ = "0.1.0"
APPLICATION_NAME = "pgdoctor"
