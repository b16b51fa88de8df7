"""Only what pyproject.toml cannot say: the top-level ``features/`` and ``experiments/`` folders
(where specs and experiments are written and reviewed) are shipped inside the package as
``ipvalue/specs`` and ``ipvalue/experiments``, so the installed wheel needs no checkout. Everything
else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ipvalue", "ipvalue.*"]), "ipvalue.specs", "ipvalue.experiments"],
    package_dir={"ipvalue.specs": "features", "ipvalue.experiments": "experiments"},
)
