"""vpop: a virtual point of presence — RADIUS routing, ISP selection and accounting."""


def __getattr__(name: str) -> str:
    # The version is the installed package's (setup.cfg), read when first asked for.
    if name == "__version__":
        from importlib import metadata
        try:
            return metadata.version("vpop")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'vpop' has no attribute {name!r}")
