"""The --format values, apart from the renderers so the command line can name them cheaply."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    AUTO = "auto"
    TABLE = "table"
    PLAIN = "plain"
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"
    OPENMETRICS = "openmetrics"
