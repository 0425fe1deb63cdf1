"""Session-embedding decays (paper 002 Table 1 and the authors' code) on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recbench.core.errors import ConfigError
from recbench.models.knn.session import DECAYS, decay_weights, session_embedding

# w for i = L..1 (oldest first), written out by hand for L = 1..5.
HAND = {
    "none": {L: [1.0] * L for L in range(1, 6)},
    "constant_linear": {1: [1], 2: [0.9, 1], 3: [0.8, 0.9, 1], 4: [0.7, 0.8, 0.9, 1],
                        5: [0.6, 0.7, 0.8, 0.9, 1]},
    "scaling_linear": {1: [1], 2: [1 / 2, 1], 3: [1 / 3, 2 / 3, 1],
                       4: [1 / 4, 2 / 4, 3 / 4, 1], 5: [1 / 5, 2 / 5, 3 / 5, 4 / 5, 1]},
    "scaling_quadratic": {1: [1], 2: [1 - 1 / 4, 1], 3: [1 - 2 / 9, 1 - 1 / 9, 1],
                          4: [1 - 3 / 16, 1 - 2 / 16, 1 - 1 / 16, 1],
                          5: [1 - 4 / 25, 1 - 3 / 25, 1 - 2 / 25, 1 - 1 / 25, 1]},
    "scaling_cubic": {1: [1], 2: [1 - 1 / 8, 1], 3: [1 - 2 / 27, 1 - 1 / 27, 1],
                      4: [1 - 3 / 64, 1 - 2 / 64, 1 - 1 / 64, 1],
                      5: [1 - 4 / 125, 1 - 3 / 125, 1 - 2 / 125, 1 - 1 / 125, 1]},
    "log": {L: [1 / math.log(i + 1) for i in range(L, 0, -1)] for L in range(1, 6)},
    "harmonic": {1: [1], 2: [1 / 2, 1], 3: [1 / 3, 1 / 2, 1], 4: [1 / 4, 1 / 3, 1 / 2, 1],
                 5: [1 / 5, 1 / 4, 1 / 3, 1 / 2, 1]},
    "squared_harmonic": {1: [1], 2: [1 / 4, 1], 3: [1 / 9, 1 / 4, 1],
                         4: [1 / 16, 1 / 9, 1 / 4, 1], 5: [1 / 25, 1 / 16, 1 / 9, 1 / 4, 1]},
    # the authors' code: 1/(ln i + 1); (scaling linear)^2 and ^3
    "authors_log": {1: [1], 2: [1 / (math.log(2) + 1), 1],
                    3: [1 / (math.log(3) + 1), 1 / (math.log(2) + 1), 1],
                    4: [1 / (math.log(4) + 1), 1 / (math.log(3) + 1), 1 / (math.log(2) + 1), 1],
                    5: [1 / (math.log(5) + 1), 1 / (math.log(4) + 1), 1 / (math.log(3) + 1),
                        1 / (math.log(2) + 1), 1]},
    "authors_scaling_quadratic": {1: [1], 2: [1 / 4, 1], 3: [1 / 9, 4 / 9, 1],
                                  4: [1 / 16, 4 / 16, 9 / 16, 1],
                                  5: [1 / 25, 4 / 25, 9 / 25, 16 / 25, 1]},
    "authors_scaling_cubic": {1: [1], 2: [1 / 8, 1], 3: [1 / 27, 8 / 27, 1],
                              4: [1 / 64, 8 / 64, 27 / 64, 1],
                              5: [1 / 125, 8 / 125, 27 / 125, 64 / 125, 1]},
}


def test_every_decay_has_hand_values():
    assert set(HAND) == set(DECAYS)


@pytest.mark.parametrize("decay", sorted(HAND))
@pytest.mark.parametrize("length", [1, 2, 3, 4, 5])
def test_decay_vector(decay, length):
    np.testing.assert_allclose(decay_weights(length, decay), HAND[decay][length], rtol=1e-12)


def test_log_base_does_not_change_the_mean():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    w10 = np.array([1 / math.log10(i + 1) for i in (3, 2, 1)])
    np.testing.assert_allclose(session_embedding(e, "mean", "log"), w10 @ e / w10.sum())


def test_constant_linear_floor_after_ten_items():
    w = decay_weights(12, "constant_linear")
    assert w[0] == pytest.approx(1e-5) and w[1] == pytest.approx(1e-5)  # i = 12, 11
    assert w[2] == pytest.approx(0.1)  # i = 10


def test_session_embedding_mean_last_and_weighted():
    e = np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])  # oldest first
    np.testing.assert_allclose(session_embedding(e, "last"), [4.0, 4.0])
    np.testing.assert_allclose(session_embedding(e, "mean"), [5 / 3, 2.0])
    # harmonic: w = 1/3, 1/2, 1 -> (1/3 [1,0] + 1/2 [0,2] + [4,4]) / (11/6)
    np.testing.assert_allclose(session_embedding(e, "mean", "harmonic"),
                               [(1 / 3 + 4) / (11 / 6), (1 + 4) / (11 / 6)])


def test_bad_names_are_one_line_errors():
    with pytest.raises(ConfigError, match="decay 'quadratic'"):
        decay_weights(3, "quadratic")
    with pytest.raises(ConfigError, match="session pooling"):
        session_embedding(np.ones((2, 2)), "max")
