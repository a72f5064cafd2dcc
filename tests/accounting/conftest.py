"""Fixtures shared by the accounting tests."""

from __future__ import annotations

import pytest

from vpop.store.journal import Journal


@pytest.fixture
def journal(tmp_path):
    """A fresh accounting journal, written from this process, closed after the test."""
    opened = Journal(str(tmp_path / "journal"), writer=True)
    yield opened
    opened.close()
