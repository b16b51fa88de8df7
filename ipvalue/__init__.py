"""ipvalue: patent valuation for IP-pledge lending (知识产权质押融资 internal valuation).

Heavy dependencies (mlflow, shap, lightgbm, matplotlib) are imported inside the functions that
need them, so ``import ipvalue`` stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ipvalue")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
