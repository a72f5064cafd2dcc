"""Provisioning sections for leases of infrastructure to ISPs (see provisioning.py for the machinery)."""

from __future__ import annotations

SECTIONS: tuple = ()
