"""The thermostability head, the composition baseline and the metrics."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tutorial_lib.protein.thermo import (
    COMPOSITION_ALPHABET,
    ThermoHead,
    _objective,
    auroc,
    balanced_accuracy,
    choose_l2,
    composition,
    compositions,
    confusion_matrix,
    fit_thermo_head,
    ordinal_nll,
    roc_curve,
)


def test_composition_counts_standard_residues():
    c = composition("AACx")
    assert c.shape == (20,)
    assert c[COMPOSITION_ALPHABET.index("A")] == pytest.approx(2 / 3)
    assert c[COMPOSITION_ALPHABET.index("C")] == pytest.approx(1 / 3)
    np.testing.assert_allclose(composition("acj"), composition("AC"))
    many = compositions(["MKV", "WWWA", "GGGGGGGGGGGC"])
    np.testing.assert_allclose(many.sum(1), 1.0)
    np.testing.assert_allclose(many[1], composition("WWWA"))
    with pytest.raises(ValueError, match="'1'"):
        composition("AC1")
    with pytest.raises(ValueError, match="no standard amino acid"):
        compositions(["AC", "XXB"])
    with pytest.raises(TypeError):
        compositions("ACD")


def test_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=60).astype(float)  # many ties
    positives = rng.random(60) < 0.4
    pos, neg = scores[positives], scores[~positives]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)])
    assert auroc(scores, positives) == pytest.approx(brute, abs=1e-12)
    assert auroc(scores, positives.astype(int)) == pytest.approx(brute, abs=1e-12)
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    fpr, tpr = roc_curve(scores, positives)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="one length"):
        auroc([0.1, 0.2, 0.3], [True, False])


def test_confusion_matrix_and_balanced_accuracy():
    true = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    pred = np.array([0, 1, 1, 1, 2, 2, 3, 0])
    cm = confusion_matrix(true, pred, 4)
    expected = np.zeros((4, 4), int)
    for t, p in zip(true, pred, strict=True):
        expected[t, p] += 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 8 and cm.sum(1).tolist() == [2, 3, 1, 2]
    assert balanced_accuracy(cm) == pytest.approx((1 / 2 + 2 / 3 + 1 + 1 / 2) / 4)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        confusion_matrix(true, pred + 1, 4)


def _planted(n=3000, seed=0):
    """Features with offsets and scales; labels from a known proportional-odds model."""
    rng = np.random.default_rng(seed)
    d = 5
    mu, sd = rng.normal(size=d) * 3, np.exp(rng.normal(size=d))
    x = mu + sd * rng.normal(size=(n, d))
    w_true = np.array([1.5, -1.0, 0.0, 0.5, 2.0])
    cut = np.array([-2.0, 0.0, 1.5])
    s = ((x - mu) / sd) @ w_true
    u = rng.random(n)
    # class = number of cut-points k with u < P(class > k) = sigmoid(s - c_k)
    labels = (u[:, None] < 1 / (1 + np.exp(-(s[:, None] - cut)))).sum(1)
    return x, labels, s - cut[1]


def test_head_recovers_a_planted_ordinal_signal():
    x, labels, true_logit = _planted()
    head = fit_thermo_head(x, labels, l2=1e-5)
    assert isinstance(head, ThermoHead) and head.n_classes == 4
    pred = np.asarray(jax.vmap(head)(jnp.asarray(x, jnp.float32)))
    assert np.corrcoef(pred, true_logit)[0, 1] > 0.99
    assert np.median(np.abs(pred - true_logit)) < 0.2
    # cut-points: shifted so the mesophile/thermophile one is zero, gaps as planted
    np.testing.assert_allclose(head.cutpoints, [-2.0, 0.0, 1.5], atol=0.25)
    assert auroc(pred, labels >= 2) > 0.85


def test_head_is_a_jax_function():
    x, labels, _ = _planted(n=400, seed=1)
    head = fit_thermo_head(x, labels, l2=1e-2)
    x0 = jnp.asarray(x[0], jnp.float32)
    grad = jax.grad(head)(x0)
    np.testing.assert_allclose(grad, head.weight / head.scale, rtol=1e-5)
    assert jax.jit(lambda h, x: h(x))(head, x0).shape == ()
    probs = jax.vmap(head.class_probabilities)(jnp.asarray(x, jnp.float32))
    assert probs.shape == (400, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert float(probs.min()) >= 0.0
    # the median class: P(class > k) > 1/2 exactly for the k below the prediction
    cls = jax.vmap(head.predict_class)(jnp.asarray(x, jnp.float32))
    cum_above = 1.0 - np.cumsum(np.asarray(probs), 1)[:, :-1]
    np.testing.assert_array_equal(np.asarray(cls), (cum_above > 0.5).sum(1))
    # logit of P(class >= 2) is what the head returns
    np.testing.assert_allclose(jax.nn.sigmoid(head(x0)), probs[0, 2:].sum(), atol=1e-5)


def test_nll_agrees_with_the_training_objective_and_choose_l2():
    x, labels, _ = _planted(n=600, seed=2)
    head = fit_thermo_head(x[:400], labels[:400], l2=0.0)
    x, labels = x[:400], labels[:400]
    z = jnp.asarray((x - np.asarray(head.mean)) / np.asarray(head.scale), jnp.float32)
    # rebuild the raw parameters of the unshifted model: w and cut-points c + bias
    cut = np.asarray(head.cutpoints - head.bias, np.float64)
    raw = np.r_[cut[0], np.log(np.expm1(np.diff(cut)))]
    theta = jnp.asarray(np.r_[np.asarray(head.weight), raw], jnp.float32)
    direct = float(_objective(theta, z, jnp.asarray(labels), jnp.float32(0.0)))
    assert ordinal_nll(head, x, labels) == pytest.approx(direct, rel=1e-4)
    uniform = np.log(4.0)
    assert ordinal_nll(head, x, labels) < uniform
    x, labels, _ = _planted(n=600, seed=2)
    choice = choose_l2((x[:400], labels[:400]), (x[400:], labels[400:]), grid=(1e-3, 10.0))
    assert set(choice.val_nll) == {1e-3, 10.0}
    assert choice.l2 == min(choice.val_nll, key=choice.val_nll.get) == 1e-3
    assert ordinal_nll(choice.head, x[400:], labels[400:]) == choice.val_nll[1e-3]


def test_fit_rejects_bad_labels():
    x = np.random.default_rng(0).normal(size=(8, 3))
    with pytest.raises(ValueError, match="one class per row"):
        fit_thermo_head(x, np.zeros((8, 1), int))
    with pytest.raises(ValueError, match="missing \\[2\\]"):
        fit_thermo_head(x, np.array([0, 1, 3, 3, 0, 1, 3, 0]))
    with pytest.raises(ValueError, match="integer"):
        fit_thermo_head(x, np.linspace(0, 1, 8))
    with pytest.raises(ValueError, match=r"0\.\.3"):
        fit_thermo_head(x, np.array([0, 1, 2, 3, 4, 0, 1, 2]), n_classes=4)
    with pytest.raises(ValueError, match="2-D"):
        fit_thermo_head(x[:, 0], np.arange(8) % 4)


def test_numpy_gradient_matches_jax():
    from tutorial_lib.protein.thermo import _objective_np

    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 4))
    y = rng.integers(0, 4, size=50)
    theta = np.r_[rng.normal(size=4), -1.0, 0.3, -0.5]
    value, grad = _objective_np(theta, z, y, np.full(4, 0.1))
    jax_value, jax_grad = jax.value_and_grad(_objective)(
        jnp.asarray(theta, jnp.float32), jnp.asarray(z, jnp.float32), jnp.asarray(y), 0.1
    )
    assert value == pytest.approx(float(jax_value), rel=1e-5)
    np.testing.assert_allclose(grad, jax_grad, rtol=1e-4, atol=1e-6)
