"""Model metrics: reliability tables, calibration error."""

import pytest

from ipvalue.models.metrics import reliability_table

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"


def test_reliability_table_counts_every_prediction():
    t = reliability_table([0, 1, 1, 0], [0.05, 0.95, 0.55, 0.5])
    assert t["n"].sum() == 4 and t["bin"].tolist() == [0, 5, 9]
