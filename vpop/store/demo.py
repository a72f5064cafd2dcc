"""The demo data set shipped with vpop, in the provisioning format."""

from __future__ import annotations

from pathlib import Path

# The demo's proxy-mode ISP (isp-proxy) has a RADIUS server of its own: a second vpop
# whose config and database live here, relative to the demo's config file.
ISP_HOME = Path("var") / "isp-proxy"


def demo_plan_path() -> Path:
    """vpop/store/demo.toml: two loopback NAS, three profiles, six subscribers, an ISP in
    each mode (local, tunnel, proxy) with a lease each."""
    return Path(__file__).with_name("demo.toml")


def isp_plan_path() -> Path:
    """vpop/store/demo-isp-proxy.toml: the data of isp-proxy's own vpop."""
    return Path(__file__).with_name("demo-isp-proxy.toml")


def isp_config_template() -> Path:
    """The config of isp-proxy's own vpop (ports 11645, 11646, 11647 on loopback)."""
    return Path(__file__).resolve().parent.parent / "templates" / "demo-isp-proxy.toml"


def isp_config_path(config: Path) -> Path:
    """Where `vpop init --demo` puts isp-proxy's config, for the demo config `config`."""
    return config.parent / ISP_HOME / "vpop.toml"
