"""ipvalue: patent valuation for IP-pledge lending (知识产权质押融资 internal valuation).

Heavy dependencies (pandas, scikit-learn, mlflow, shap, lightgbm, matplotlib) are imported by the
modules and functions that need them, so ``import ipvalue`` stays fast: it imports nothing until
``ipvalue.__version__`` is first read (from the installed package's metadata).
"""

__all__ = ["__version__"]


def __getattr__(name: str):
    # PEP 562: the version is read on first use; importlib.metadata alone costs ~30 ms at start-up
    if name != "__version__":
        raise AttributeError(f"module 'ipvalue' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ipvalue")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
