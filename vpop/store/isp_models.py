"""ISP tables: upstream ISPs, their RADIUS servers and tunnel endpoints."""

from __future__ import annotations

from vpop.store.models import Base  # noqa: F401
