"""Docstring examples are tests: every `>>>` in pgdoctor's modules runs here."""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.test_layers import MODULES

WITH_EXAMPLES = sorted(m for m, path in MODULES.items() if ">>> " in path.read_text())


def test_some_modules_have_examples() -> None:
    assert "pgdoctor.analyze.format" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
