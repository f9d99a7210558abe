"""The gateway: verifies, stores and forwards drug traceability-code scans (README.md, docs/operations.md)."""


def version() -> str:
    """The installed package's version (one source for --version and the build-info metric)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tracecode-edge")
    except PackageNotFoundError:
        return "unknown (not installed)"
