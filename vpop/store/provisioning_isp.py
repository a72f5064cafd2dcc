"""Provisioning sections for ISPs, their RADIUS servers and tunnel endpoints (see provisioning.py for the machinery)."""

from __future__ import annotations

SECTIONS: tuple = ()
