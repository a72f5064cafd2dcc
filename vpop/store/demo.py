"""The demo data set shipped with vpop, in the provisioning format."""

from __future__ import annotations

from pathlib import Path


def demo_plan_path() -> Path:
    """vpop/store/demo.toml: two loopback NAS, three profiles, six subscribers."""
    return Path(__file__).with_name("demo.toml")
