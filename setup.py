"""Only what pyproject.toml cannot say: the top-level ``features/`` folder (where specs are written
and reviewed) is shipped inside the package as ``ipvalue/specs``. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ipvalue", "ipvalue.*"]), "ipvalue.specs"],
    package_dir={"ipvalue.specs": "features"},
)
