"""Fixtures shared by the accounting tests."""

from __future__ import annotations

import pytest

from vpop.store.journal import Journal


@pytest.fixture
def journal(tmp_path):
    """A fresh accounting journal file, closed after the test."""
    opened = Journal(str(tmp_path / "journal.db"))
    yield opened
    opened.close()
