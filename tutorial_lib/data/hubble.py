"""Galaxy cutouts from the Hubble (eXtreme) Deep Field image bundled with scikit-image.

Always available offline: the image ships inside the scikit-image wheel.
"""

import numpy as np
import skimage.color
import skimage.data
import skimage.feature
import skimage.filters
import skimage.measure
import skimage.segmentation
from jaxtyping import Float, Int, UInt8

__all__ = [
    "detect_sources",
    "hubble_cutouts",
]


def detect_sources(
    image: UInt8[np.ndarray, "h w 3"],
    *,
    smooth_sigma: float = 1.5,
    detect_nsigma: float = 6.0,
    peak_nsigma: float = 12.0,
    min_area: int = 50,
) -> tuple[Float[np.ndarray, "k 2"], Float[np.ndarray, " k"]]:
    """Find sources in an RGB sky image: `(centres (row, col), areas in pixels)`, brightest first.

    Threshold the smoothed grey image at `detect_nsigma` robust standard deviations (median
    absolute deviation) above the sky, split blended sources by a watershed from local peaks
    brighter than `peak_nsigma`, and keep segments of at least `min_area` pixels. Centres are
    intensity-weighted centroids.
    """
    grey = skimage.filters.gaussian(skimage.color.rgb2gray(image), sigma=smooth_sigma)
    sky = np.median(grey)
    noise = 1.4826 * np.median(np.abs(grey - sky))
    mask = grey > sky + detect_nsigma * noise
    peaks = skimage.feature.peak_local_max(
        grey,
        min_distance=5,
        threshold_abs=sky + peak_nsigma * noise,
        labels=skimage.measure.label(mask),
        exclude_border=False,
    )
    markers = np.zeros(grey.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    segments = skimage.segmentation.watershed(-grey, markers, mask=mask)
    regions = [
        r for r in skimage.measure.regionprops(segments, intensity_image=grey) if r.area >= min_area
    ]
    flux = np.array([r.intensity_mean * r.area for r in regions])
    order = np.argsort(-flux, kind="stable")
    centres = np.array([regions[i].centroid_weighted for i in order], dtype=np.float64)
    areas = np.array([regions[i].area for i in order], dtype=np.float64)
    return centres.reshape(-1, 2), areas


def hubble_cutouts(
    *, min_half_width: int = 10, extent: float = 2.0
) -> tuple[list[UInt8[np.ndarray, "s s 3"]], Int[np.ndarray, "k 2"]]:
    """Square cutouts around the sources of `skimage.data.hubble_deep_field()`.

    Each cutout is centred on a source with half-width `extent` times the source's equivalent
    radius (at least `min_half_width` px), the same framing as the Galaxy Zoo centre crop.
    Cutouts that would cross the image edge are dropped. Returns the cutouts (varying sizes)
    and their centres (row, col).
    """
    image = skimage.data.hubble_deep_field()
    h, w, _ = image.shape
    centres, areas = detect_sources(image)
    cutouts, kept = [], []
    for (y, x), area in zip(centres, areas, strict=True):
        r = int(np.ceil(max(min_half_width, extent * np.sqrt(area / np.pi))))
        yc, xc = round(y), round(x)
        if yc - r < 0 or xc - r < 0 or yc + r > h or xc + r > w:
            continue
        cutouts.append(image[yc - r : yc + r, xc - r : xc + r])
        kept.append((yc, xc))
    return cutouts, np.array(kept, dtype=np.int64).reshape(-1, 2)
