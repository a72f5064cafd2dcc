"""vpop: a virtual point of presence — RADIUS routing, ISP selection and accounting."""

__version__ = "0.1.0"
