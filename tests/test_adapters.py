"""Adapters against scikit-learn under a fixed seed; `reduce`'s caps, fit rows and errors."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.core.errors import ConfigError
from recbench.items.adapters import ADAPTERS, reduce

sklearn = pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(7)
    basis = rng.normal(size=(6, 40))
    return rng.normal(size=(300, 6)) @ basis + 0.1 * rng.normal(size=(300, 40))  # (300, 40)


def test_registry_lists_the_four_adapters():
    assert set(ADAPTERS.names()) == {"pca", "lda", "autoencoder", "random"}


def test_pca_equals_sklearn(vectors):
    from sklearn.decomposition import PCA

    ref = PCA(n_components=8, svd_solver="full").fit(vectors[:200])
    out = reduce(vectors, "pca", 8, fit_rows=np.arange(200))
    np.testing.assert_allclose(out.vectors, ref.transform(vectors).astype(np.float32),
                               rtol=1e-4, atol=1e-4)
    assert out.info["explained_variance"] == pytest.approx(ref.explained_variance_ratio_.sum())
    assert out.info["fit_items"] == 200 and not out.info["fit_all_items"]


def test_random_projection_equals_sklearn(vectors):
    from sklearn.random_projection import GaussianRandomProjection

    ref = GaussianRandomProjection(n_components=16, random_state=3).fit(vectors)
    out = reduce(vectors, "random", 16, seed=3)
    np.testing.assert_allclose(out.vectors, ref.transform(vectors).astype(np.float32),
                               rtol=1e-5, atol=1e-5)
    other = reduce(vectors, "random", 16, seed=4)
    assert not np.allclose(other.vectors, out.vectors)


def test_lda_equals_sklearn(vectors):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    classes = np.array([f"c{i % 5}" for i in range(len(vectors))], dtype=object)
    ref = LinearDiscriminantAnalysis(n_components=3).fit(vectors, classes)
    out = reduce(vectors, "lda", 3, classes=classes)
    np.testing.assert_allclose(out.vectors, ref.transform(vectors).astype(np.float32),
                               rtol=1e-4, atol=1e-4)


def test_lda_caps_at_classes_minus_one_and_skips_unlabelled(vectors):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    classes = np.array([("a", "b", "c")[i % 3] for i in range(len(vectors))], dtype=object)
    classes[:30] = None  # items without a category: not fitted on, still projected
    out = reduce(vectors, "lda", 128, classes=classes)
    assert out.vectors.shape == (300, 2)
    assert "dim 128 capped at 2" in out.info["note"] and "30 of 300" in out.info["note"]
    ref = LinearDiscriminantAnalysis().fit(vectors[30:], classes[30:].astype(str))
    np.testing.assert_allclose(out.vectors, ref.transform(vectors).astype(np.float32),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="at least 2 item classes"):
        reduce(vectors, "lda", 2, classes=np.array(["x"] * 300, dtype=object))
    with pytest.raises(ConfigError, match="needs item classes"):
        reduce(vectors, "lda", 2)


def test_pca_cap_normalisation_and_unknown_method(vectors):
    out = reduce(vectors, "pca", 512, normalize=True)
    assert out.vectors.shape == (300, 40) and "capped at 40" in out.info["note"]
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(Exception, match="adapter"):
        reduce(vectors, "umap", 8)


def test_linear_autoencoder_is_seeded(vectors):
    a = reduce(vectors, "autoencoder", 6, seed=1)
    b = reduce(vectors, "autoencoder", 6, seed=1)
    assert a.vectors.shape == (300, 6)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.info["widths"] == [24, 12, 6]  # 2*6 doubled while <= 40, widest first
    assert not np.allclose(reduce(vectors, "autoencoder", 6, seed=2).vectors, a.vectors)


def test_linear_autoencoder_learns_the_principal_subspace(vectors):
    from recbench.items.adapters.autoencoder import LinearAutoencoder

    x = vectors - vectors.mean(0)
    ae = LinearAutoencoder(6, seed=0, epochs=300, batch_size=300, lr=1e-2).fit(x)
    code = np.c_[ae.transform(x), np.ones(len(x))]  # the layers' biases shift the code
    # the code spans (nearly) the top-6 principal subspace: least squares from the PCA scores
    pcs = reduce(x, "pca", 6).vectors.astype(np.float64)
    coef, *_ = np.linalg.lstsq(code, pcs, rcond=None)
    assert np.linalg.norm(code @ coef - pcs) / np.linalg.norm(pcs) < 0.05
