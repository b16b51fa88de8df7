"""Model metrics: reliability tables, calibration error."""

import numpy as np
import pytest

from ipvalue.models.metrics import reliability_table

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"


def test_reliability_table_counts_every_prediction():
    t = reliability_table([0, 1, 1, 0], [0.05, 0.95, 0.55, 0.5])
    assert t["n"].sum() == 4 and t["bin"].tolist() == [0, 5, 9]


def test_the_calibrated_ece_reference_is_the_sampling_noise_of_the_ece():
    from ipvalue.models.metrics import binary_metrics, calibrated_ece_reference

    rng = np.random.default_rng(1)
    p_small, p_large = rng.uniform(0.2, 0.9, 600), rng.uniform(0.2, 0.9, 20000)
    small, large = calibrated_ece_reference(p_small), calibrated_ece_reference(p_large)
    assert small[0] < small[1] and large[0] < small[0] / 3  # noise shrinks like 1/sqrt(n)
    y = (rng.random(600) < p_small).astype(int)
    assert binary_metrics(y, p_small)["ece"] < small[1] * 1.5  # a calibrated model sits in the noise
    shifted = binary_metrics(y, np.clip(p_small + 0.1, 0, 1))  # 10 points too high: far outside it
    assert shifted["ece"] > 1.5 * shifted["ece_if_calibrated_p95"] and shifted["mean_predicted"] > shifted["observed_rate"] + 0.08
