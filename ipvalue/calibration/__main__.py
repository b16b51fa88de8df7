"""``python -m ipvalue.calibration FOLDER [--seed N] [--loans N]``: write a SYNTHETIC pilot ledger
with known true parameters (see :mod:`ipvalue.calibration.synthetic`) and print its truth."""

from ipvalue.calibration.synthetic import main

main()
