"""Measurements that put different generative models on one scale: Part IV's comparison.

- `GalaxyFeatures`: the feature space the book compares samples in. Not an ImageNet network
  (trained on photographs, blind to what matters in a 32x32 galaxy stamp) but the galaxies'
  own principal components ("eigengalaxies"), fitted on the training galaxies only and scaled
  to unit variance, so that a fine, low-variance component counts as much as the overall
  brightness.
- `frechet_distance`: the Fréchet (2-Wasserstein) distance between Gaussian fits of two sets of
  features, the construction of FID (Heusel et al. 2017) in this feature space.
- `precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019). Precision: the
  share of generated samples that fall inside the real data's manifold (the union of k-NN
  balls around real samples); recall: the share of real samples inside the generated
  manifold. Low precision is poor fidelity; low recall is missing diversity (mode collapse).
- `morphology_distances`: Wasserstein-1 distances of the four morphology summaries (Part II);
  `copy_check`: how close samples come to their nearest training galaxy, against held-out
  galaxies' (which are certainly not copies).
- `morphology_judge`: a spiral / not-spiral classifier trained on real training galaxies only
  (the four morphology summaries, logistic regression), which never sees a generated image.
"""

import dataclasses

import numpy as np
import scipy.linalg
from jaxtyping import ArrayLike, Float

from tutorial_lib.diffusion import morphology
from tutorial_lib.generative.classify import PCA, LogisticModel, cross_validate_l2

__all__ = [
    "CopyCheck",
    "GalaxyFeatures",
    "MorphologyJudge",
    "copy_check",
    "frechet_distance",
    "morphology_distances",
    "morphology_judge",
    "mosaic",
    "precision_recall",
]


def _points(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite feature vectors (n >= 2, d), got shape {x.shape}")
    return x


@dataclasses.dataclass(frozen=True)
class GalaxyFeatures:
    """Whitened principal-component coordinates of galaxy images `(n, s, s, 3)` in [0, 1]."""

    pca: PCA
    scale: Float[np.ndarray, " d"]

    @classmethod
    def fit(cls, images: ArrayLike, dim: int = 32) -> "GalaxyFeatures":
        """Fitted on real (training) galaxies only."""
        x = np.asarray(images, np.float64).reshape(len(images), -1)
        pca = PCA(x, dim)
        return cls(pca, pca.transform(x).std(axis=0))

    def __call__(self, images: ArrayLike) -> Float[np.ndarray, "n d"]:
        x = np.asarray(images, np.float64)
        flat = x.reshape(len(x), -1)
        if flat.shape[1] != self.pca.mean.size:
            raise ValueError(
                f"expected images with {self.pca.mean.size} values each (as the galaxies the "
                f"features were fitted on), got shape {x.shape}"
            )
        return self.pca.transform(flat) / self.scale


def frechet_distance(a: ArrayLike, b: ArrayLike) -> float:
    """`|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))` between Gaussian fits of two sets
    of feature vectors `(n, d)`: zero for identical fits, in squared feature units."""
    a, b = _points(a, "a"), _points(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = scipy.linalg.sqrtm(s_a @ s_b)
    root = np.real(root)  # round-off can leave a negligible imaginary part
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * root))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(points[:, None] - centres[None], axis=-1)
    return np.any(d <= radii[None], axis=1)


def precision_recall(real: ArrayLike, generated: ArrayLike, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of `generated` against `real` feature vectors, with
    manifolds estimated from k-nearest-neighbour balls (Kynkäänniemi et al. 2019)."""
    real, generated = _points(real, "real"), _points(generated, "generated")
    if not (isinstance(k, int) and 1 <= k < min(len(real), len(generated))):
        raise ValueError(f"k must be a whole number from 1 to fewer than either set, got {k!r}")
    precision = _inside(generated, real, _knn_radii(real, k)).mean()
    recall = _inside(real, generated, _knn_radii(generated, k)).mean()
    return float(precision), float(recall)


def _morphology_features(images) -> np.ndarray:
    s = morphology.summaries(images)
    return np.stack([s[k] for k in morphology.SUMMARY_KEYS], axis=1)


@dataclasses.dataclass(frozen=True)
class MorphologyJudge:
    """A classifier of galaxy images by their morphology summaries; undefined summaries (a
    blank image has no concentration) are replaced by the training galaxies' median."""

    model: LogisticModel
    fill: Float[np.ndarray, " 4"]
    label_names: tuple[str, ...]

    def features(self, images: ArrayLike) -> Float[np.ndarray, "n 4"]:
        f = _morphology_features(images)
        return np.where(np.isfinite(f), f, self.fill)

    def predict(self, images: ArrayLike) -> np.ndarray:
        """The predicted label index of each image `(n, s, s, 3)` in [0, 1]."""
        return np.asarray(self.model.predict(self.features(images)))

    def probabilities(self, images: ArrayLike) -> np.ndarray:
        """The probability of each label for each image, `(n, labels)`."""
        return np.asarray(self.model.probabilities(self.features(images)))


def morphology_judge(
    images: ArrayLike, labels: ArrayLike, label_names: tuple[str, ...]
) -> MorphologyJudge:
    """Fit the judge on real galaxies and their labels (its L2 strength by cross-validation)."""
    f = _morphology_features(images)
    fill = np.nanmedian(f, axis=0)
    model = cross_validate_l2(np.where(np.isfinite(f), f, fill), np.asarray(labels))
    return MorphologyJudge(model, fill, tuple(label_names))


def morphology_distances(images: ArrayLike, reference: ArrayLike) -> dict[str, float]:
    """Wasserstein-1 distance of each morphology summary (`morphology.SUMMARY_KEYS`) between
    two sets of galaxies `(n, s, s, 3)`, over the images where it is defined (a blank image has
    no concentration)."""
    a, b = morphology.summaries(images), morphology.summaries(reference)
    out = {}
    for key in morphology.SUMMARY_KEYS:
        x, y = a[key][np.isfinite(a[key])], b[key][np.isfinite(b[key])]
        out[key] = morphology.wasserstein_1d(x, y) if len(x) and len(y) else float("nan")
    return out


@dataclasses.dataclass(frozen=True)
class CopyCheck:
    """Distances (RMS pixel difference) from each sample and each held-out galaxy to its
    nearest training galaxy, and the share of samples closer than the closest 1 % of held-out
    galaxies get: near-copies."""

    sample_distances: Float[np.ndarray, " n"]
    heldout_distances: Float[np.ndarray, " m"]
    near_copy_share: float


def copy_check(samples: ArrayLike, train: ArrayLike, heldout: ArrayLike) -> CopyCheck:
    """Nearest-training-neighbour distances of `samples`, with held-out galaxies as the scale."""
    d_samples, _ = morphology.nearest_neighbour_distances(samples, train)
    d_held, _ = morphology.nearest_neighbour_distances(heldout, train)
    threshold = np.percentile(d_held, 1)
    return CopyCheck(d_samples, d_held, float(np.mean(d_samples < threshold)))


def mosaic(images: ArrayLike, cols: int = 8, pad: int = 1) -> Float[np.ndarray, "h w 3"]:
    """Galaxies `(n, s, s, 3)` tiled row by row into one image with `pad` white pixels between
    them, for a single `imshow` (missing tiles in the last row are white)."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(f"expected images (n, s, s, 3), got shape {x.shape}")
    n, s = len(x), x.shape[1]
    rows = -(-n // cols)
    out = np.ones((rows * (s + pad) - pad, cols * (s + pad) - pad, 3), np.float32)
    for i, image in enumerate(x):
        r, c = divmod(i, cols)
        out[r * (s + pad) : r * (s + pad) + s, c * (s + pad) : c * (s + pad) + s] = image
    return np.clip(out, 0.0, 1.0)
