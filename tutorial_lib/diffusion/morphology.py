"""Morphology summaries for small RGB galaxy cutouts, to compare generated galaxies with real ones.

Images are float arrays in [0, 1] of shape `(n, s, s, 3)`: a centred galaxy on dark sky, as in the
SDSS Galaxy Zoo stamps, whose JPEG colour composites map the SDSS g, r, i bands to B, G, R. All
statistics are measured on these composite images, not on calibrated fluxes, so they are for
*comparing* two sets of images processed the same way, not for quoting physical values.

- `concentration` and `asymmetry` follow the CAS system of Conselice (2003), simplified: fixed
  apertures, the centroid rather than the asymmetry-minimising centre, and no noise correction.
- `ellipticity` is 1 - b/a from flux-weighted second moments (Abraham et al. 1994, 1996).
- `colour` is a composite-image colour index, 2.5 log10(R / B): larger is redder.

Pixel (i, j) has its centre at (y, x) = (i, j); the image centre is ((s - 1) / 2, (s - 1) / 2).
An image with no flux above its sky gets NaN for the shape statistics.
"""

import numpy as np
from scipy import ndimage, stats

__all__ = [
    "BORDER",
    "FLUX_FLOOR",
    "SUMMARY_KEYS",
    "asymmetry",
    "background",
    "colour",
    "concentration",
    "ellipticity",
    "luminance",
    "nearest_neighbour_distances",
    "pixel_gradient_rms",
    "radial_profile",
    "summaries",
    "wasserstein_1d",
]

BORDER = 3  # width in pixels of the frame whose median is the sky level
FLUX_FLOOR = 1e-3  # summed pixel values; keeps the colour finite when a channel has no flux
SUMMARY_KEYS = ("colour", "concentration", "asymmetry", "ellipticity")


def _check_images(images) -> np.ndarray:
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        hint = " (add a batch axis with images[None])" if x.ndim == 3 else ""
        raise ValueError(
            f"expected a batch of square RGB images of shape (n, s, s, 3), got shape {x.shape}"
            f"{hint}; images are channels last, e.g. to_image_space(x) of model outputs"
        )
    if x.shape[0] == 0 or x.shape[1] <= 2 * BORDER + 1:
        raise ValueError(
            f"expected at least one image of side s > {2 * BORDER + 1} px, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or inf; drop or repair those images first")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"image values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; rescale model outputs "
            "from [-1, 1] with (x + 1) / 2 and clip with np.clip(images, 0, 1)"
        )
    return x


def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[:s, :s]
    return y.astype(np.float64), x.astype(np.float64)


def _centroids(lum: np.ndarray) -> np.ndarray:
    """Flux-weighted centroid `(n, 2)` of the luminance in the central half of each image."""
    n, s, _ = lum.shape
    y, x = _grid(s)
    # The central half only, so that a bright neighbour near the edge cannot drag the centre.
    lo, hi = s // 4, s - s // 4
    w = lum[:, lo:hi, lo:hi]
    total = w.sum(axis=(1, 2))
    centre = np.full((n, 2), (s - 1) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (w * y[lo:hi, lo:hi]).sum(axis=(1, 2)) / total
        cx = (w * x[lo:hi, lo:hi]).sum(axis=(1, 2)) / total
    ok = total > 0
    centre[ok, 0], centre[ok, 1] = cy[ok], cx[ok]
    return centre


def _distances(s: int, centres: np.ndarray) -> np.ndarray:
    """Distance `(n, s, s)` of every pixel centre from each image's centre."""
    y, x = _grid(s)
    return np.hypot(y - centres[:, 0, None, None], x - centres[:, 1, None, None])


def background(images) -> np.ndarray:
    """Sky level per image and channel, `(n, 3)`: the median of the outer `BORDER` pixels."""
    x = _check_images(images)
    s = x.shape[1]
    frame = np.ones((s, s), dtype=bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    return np.median(x[:, frame, :], axis=1)


def luminance(images) -> np.ndarray:
    """Background-subtracted mean over the three channels, clipped at 0, `(n, s, s)`."""
    x = _check_images(images)
    return np.clip((x - background(x)[:, None, None, :]).mean(axis=-1), 0.0, None)


def radial_profile(images, n_bins: object = None) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged luminance about the centroid, in unit-width radius bins.

    Bin k holds the pixels whose centres lie at distance [k, k + 1) from the flux-weighted
    centroid of the central half of the image. Returns the bin centres `radii` `(n_bins,)` and
    the profiles `(n, n_bins)`; `n_bins`, a positive integer (anything else raises a
    `ValueError`), defaults to s // 2, and an empty bin is NaN.
    """
    lum = luminance(images)
    n, s, _ = lum.shape
    if n_bins is None:
        n_bins = s // 2
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer (or None for s // 2), got {n_bins!r}")
    k = np.floor(_distances(s, _centroids(lum))).astype(np.int64)
    inside = k < n_bins
    # One bincount over (image, bin) pairs averages every annulus of every image at once.
    idx = (np.arange(n)[:, None, None] * n_bins + k)[inside]
    sums = np.bincount(idx, weights=lum[inside], minlength=n * n_bins).reshape(n, n_bins)
    counts = np.bincount(idx, minlength=n * n_bins).reshape(n, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        profiles = np.where(counts > 0, sums / counts, np.nan)
    return np.arange(n_bins) + 0.5, profiles


def _flux_radii(lum: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """Radii `(n, len(fractions))` enclosing those fractions of the flux within radius s/2."""
    n, s, _ = lum.shape
    r = _distances(s, _centroids(lum)).reshape(n, -1)
    f = np.where(r <= s / 2, lum.reshape(n, -1), 0.0)
    order = np.argsort(r, axis=1)
    r = np.take_along_axis(r, order, axis=1)
    f = np.take_along_axis(f, order, axis=1)
    # Pixel counting makes the curve of growth a staircase, jumping at each distinct pixel radius
    # (a whole ring of pixels when the centre is symmetric). Interpolating through the middle of
    # each jump rather than its top removes a bias of half a ring that inflates C for small
    # galaxies; `group` numbers the distinct radii of each image.
    new = np.concatenate([np.ones((n, 1), bool), np.diff(r, axis=1) > 1e-9], axis=1)
    group = np.cumsum(new, axis=1) - 1 + (np.arange(n) * r.shape[1])[:, None]
    jump = np.bincount(group.ravel(), weights=f.ravel(), minlength=f.size).reshape(f.shape)
    middle = (np.cumsum(jump, axis=1) - jump / 2).ravel()
    growth = middle[group]
    # The curve of growth starts at (0, 0); between pixel radii it is interpolated linearly.
    r = np.concatenate([np.zeros((n, 1)), r], axis=1)
    growth = np.concatenate([np.zeros((n, 1)), growth], axis=1)
    total = f.sum(axis=1)
    out = np.full((n, len(fractions)), np.nan)
    rows = np.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, frac in enumerate(fractions):
            target = frac * total
            hi = np.clip((growth < target[:, None]).sum(axis=1), 1, r.shape[1] - 1)
            g0, g1 = growth[rows, hi - 1], growth[rows, hi]
            t = np.where(g1 > g0, (target - g0) / (g1 - g0), 0.0)
            out[:, j] = r[rows, hi - 1] + t * (r[rows, hi] - r[rows, hi - 1])
    out[total <= 0] = np.nan
    return out


def concentration(images) -> np.ndarray:
    """Concentration C = 5 log10(r80 / r20) (Conselice 2003), `(n,)`.

    r20 and r80 enclose 20% and 80% of the luminance within radius s/2 of the centroid, read
    off the pixel curve of growth by linear interpolation. A 2-D Gaussian has C ≈ 2.14, a
    uniform disc C = 5 log10 2 ≈ 1.51, an exponential disc ≈ 2.7.
    """
    radii = _flux_radii(luminance(images), (0.2, 0.8))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 5.0 * np.log10(radii[:, 1] / radii[:, 0])


def asymmetry(images) -> np.ndarray:
    """Rotational asymmetry A = Σ|I - I_180| / (2 Σ|I|) (Conselice 2003), `(n,)`.

    I is the luminance, shifted (bilinearly) so that its centroid lies at the image centre and
    summed within radius s/2 of it; I_180 is I rotated by 180°. Unlike Conselice (2003) the
    centre is not tuned to minimise A and the sky-noise term is not subtracted, so noisier
    images read as slightly more asymmetric: compare only images with similar noise.
    """
    lum = luminance(images)
    s = lum.shape[1]
    shifts = (s - 1) / 2 - _centroids(lum)
    # One small shift per image; at s <= 64 the Python loop costs well under a millisecond each.
    centred = np.stack(
        [
            ndimage.shift(im, d, order=1, mode="constant", cval=0.0)
            for im, d in zip(lum, shifts, strict=True)
        ]
    )
    y, x = _grid(s)
    aperture = np.hypot(y - (s - 1) / 2, x - (s - 1) / 2) <= s / 2
    diff = np.abs(centred - centred[:, ::-1, ::-1])[:, aperture].sum(axis=1)
    total = np.abs(centred)[:, aperture].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, diff / (2 * total), np.nan)


def ellipticity(images) -> np.ndarray:
    """Ellipticity 1 - b/a from flux-weighted second moments (Abraham et al. 1994, 1996), `(n,)`.

    The 2x2 moment matrix of the luminance within radius s/2 of the centroid has eigenvalues
    λmin ≤ λmax, and b/a = sqrt(λmin / λmax). Sky noise left in the aperture is round, so faint
    galaxies read as rounder than they are.
    """
    lum = luminance(images)
    s = lum.shape[1]
    c = _centroids(lum)
    y, x = _grid(s)
    dy, dx = y - c[:, 0, None, None], x - c[:, 1, None, None]
    w = np.where(np.hypot(dy, dx) <= s / 2, lum, 0.0)
    total = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        myy, mxx, mxy = ((w * m).sum(axis=(1, 2)) / total for m in (dy * dy, dx * dx, dx * dy))
        # Eigenvalues of [[mxx, mxy], [mxy, myy]] in closed form, batched.
        half_trace, root = (mxx + myy) / 2, np.hypot((mxx - myy) / 2, mxy)
        e = 1.0 - np.sqrt(np.clip(half_trace - root, 0.0, None) / (half_trace + root))
    return np.where(total > 0, e, np.nan)


def colour(images) -> np.ndarray:
    """Composite-image colour index 2.5 log10(F_R / F_B), `(n,)`: larger is redder.

    F_R and F_B are the background-subtracted red- and blue-channel sums within radius s/4 of
    the centroid, floored at `FLUX_FLOOR`. With SDSS composites (i, r, g -> R, G, B) this is a
    stand-in for g - i, but on stretched JPEG pixel values, not calibrated magnitudes.
    """
    x = _check_images(images)
    s = x.shape[1]
    sub = x - background(x)[:, None, None, :]
    lum = np.clip(sub.mean(axis=-1), 0.0, None)
    inside = _distances(s, _centroids(lum)) <= s / 4
    flux = np.maximum((sub * inside[..., None]).sum(axis=(1, 2)), FLUX_FLOOR)
    return 2.5 * np.log10(flux[:, 0] / flux[:, 2])


def pixel_gradient_rms(images) -> np.ndarray:
    """Root-mean-square difference between neighbouring pixels of the luminance, `(n,)`: how
    much fine structure (detail and noise) an image has. Blurred images score low."""
    lum = luminance(_check_images(images))
    dy, dx = np.diff(lum, axis=1), np.diff(lum, axis=2)
    return np.sqrt(0.5 * (np.mean(dy**2, axis=(1, 2)) + np.mean(dx**2, axis=(1, 2))))


def summaries(images) -> dict[str, np.ndarray]:
    """The four per-image summaries, each `(n,)`, keyed as in `SUMMARY_KEYS`."""
    x = _check_images(images)
    return {
        "colour": colour(x),
        "concentration": concentration(x),
        "asymmetry": asymmetry(x),
        "ellipticity": ellipticity(x),
    }


def nearest_neighbour_distances(
    queries, references, batch: int = 256, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the smallest root-mean-square pixel difference to any reference, `(nq,)`,
    and that reference's index, `(nq,)`.

    Distances use |q|² + |r|² - 2 q·r in float64, `batch` queries at a time. With
    `exclude_self=True` the queries are the references and each image's match to itself is
    ignored (a memorisation check needs the nearest *other* image).
    """
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(references, dtype=np.float64)
    if q.ndim < 2 or q.shape[1:] != r.shape[1:]:
        raise ValueError(
            f"queries {q.shape} and references {r.shape} must be batches of images of the same "
            "shape, e.g. (n, s, s, 3); resize or crop one set to match"
        )
    if len(r) == 0 or len(q) == 0:
        raise ValueError(f"need at least one query and one reference, got {len(q)} and {len(r)}")
    if exclude_self and len(q) != len(r):
        raise ValueError(
            f"exclude_self=True needs queries to be the references, got {len(q)} queries and "
            f"{len(r)} references; pass the same array twice"
        )
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(r))):
        raise ValueError("queries or references contain NaN or inf; drop or repair them first")
    q, r = q.reshape(len(q), -1), r.reshape(len(r), -1)
    r2 = (r * r).sum(axis=1)
    dist, index = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), batch):
        qb = q[start : start + batch]
        d2 = (qb * qb).sum(axis=1)[:, None] + r2[None, :] - 2.0 * qb @ r.T
        if exclude_self:
            rows = np.arange(len(qb))
            d2[rows, start + rows] = np.inf
        index[start : start + len(qb)] = np.argmin(d2, axis=1)
        best = d2[np.arange(len(qb)), index[start : start + len(qb)]]
        # Rounding can make an exact copy's squared distance slightly negative.
        dist[start : start + len(qb)] = np.sqrt(np.clip(best, 0.0, None) / q.shape[1])
    return dist, index


def wasserstein_1d(a, b) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1-D samples, e.g. of one summary."""
    a, b = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError(f"both samples must be non-empty, got sizes {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("samples contain NaN or inf; drop them first, e.g. a[np.isfinite(a)]")
    return float(stats.wasserstein_distance(a, b))
