"""Calibration of the valuation from a bank's own pilot history (边试点、边优化): the pilot ledger,
the estimators of each coefficient with its interval, calibrated candidate sets, the out-of-time
back-test, and a synthetic ledger with known true parameters."""

from ipvalue.calibration.ledger import LEDGER_TABLES, Ledger, load_ledger, write_ledger
from ipvalue.calibration.synthetic import PilotTruth, make_pilot_ledger

__all__ = ["LEDGER_TABLES", "Ledger", "PilotTruth", "load_ledger", "make_pilot_ledger", "write_ledger"]
