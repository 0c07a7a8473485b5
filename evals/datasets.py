"""Benchmark datasets as (id, image path, lat, lon, labels) samples.

Loaders for the field's benchmarks and for any CSV plus an image folder:

* OSV-5M (Astruc et al., CVPR 2024): ``id, latitude, longitude, country, region, sub-region, city``;
  images ``<id>.jpg``.
* Im2GPS3k (Vo et al., ICCV 2017): ``im2gps3k_places365.csv`` with ``IMG_ID, LAT, LON``. An old
  release swapped the LAT/LON header; it is detected (latitudes outside [-90, 90], or a mean |LAT|
  larger than mean |LON| on a big sample) and fixed with a warning.
* YFCC4k (Vo et al., ICCV 2017): ``IMG_ID, LAT, LON``.
* MP16-Pro (Jia et al., G3, NeurIPS 2024): ``IMG_ID, LAT, LON`` plus ``city``, ``state``, ``country``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geolocate.tools.geo import haversine_km

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One labelled photo; (lat, lon) in WGS84 degrees."""

    id: str
    image: Path
    lat: float
    lon: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Dataset:
    """A named list of samples."""

    name: str
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def subset(self, limit: int | None) -> Dataset:
        return self if limit is None else Dataset(self.name, self.samples[:limit])


def load_csv(
    csv_path: str | Path,
    image_dir: str | Path,
    id_col: str = "id",
    lat_col: str = "latitude",
    lon_col: str = "longitude",
    image_pattern: str = "{id}.jpg",
    name: str | None = None,
    fix_swapped: bool = False,
) -> Dataset:
    """Any CSV plus an image folder. ``image_pattern`` maps an id to a file name (``{id}.jpg``).

    Rows whose image file is missing are skipped with a warning.

    Raises:
        FileNotFoundError: the CSV or image folder does not exist.
        KeyError: a named column is missing (the message lists the columns found).
        ValueError: a coordinate is not a number or out of range.
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    if not csv_path.is_file():
        raise FileNotFoundError(f"labels file not found: {csv_path}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for c in (id_col, lat_col, lon_col):
            if c not in cols:
                raise KeyError(f"column {c!r} not in {csv_path.name}; columns are {cols}")
        rows = list(reader)
    lats = [float(r[lat_col]) for r in rows]
    lons = [float(r[lon_col]) for r in rows]
    if fix_swapped and rows and _looks_swapped(lats, lons):
        log.warning(
            "%s: the %s/%s columns look swapped (an old Im2GPS3k release); swapping them back",
            csv_path.name,
            lat_col,
            lon_col,
        )
        lats, lons = lons, lats
    samples, missing = [], 0
    for r, la, lo in zip(rows, lats, lons):
        if not (-90 <= la <= 90 and -180 <= lo <= 180):
            raise ValueError(f"{csv_path.name}: id {r[id_col]} has coordinates out of range ({la}, {lo})")
        p = image_dir / image_pattern.format(id=r[id_col])
        if not p.exists():
            missing += 1
            continue
        labels = {k: v for k, v in r.items() if k not in (id_col, lat_col, lon_col) and v is not None}
        samples.append(Sample(r[id_col], p, la, lo, labels))
    if missing:
        log.warning(
            "%s: %d of %d images not found in %s; skipped", csv_path.name, missing, len(rows), image_dir
        )
    return Dataset(name or csv_path.stem, samples)


def _looks_swapped(lats: list[float], lons: list[float]) -> bool:
    if any(abs(x) > 90 for x in lats) and all(abs(y) <= 90 for y in lons):
        return True
    if len(lats) >= 100:
        return sum(abs(x) for x in lats) / len(lats) > sum(abs(y) for y in lons) / len(lons)
    return False


def load_osv5m(root: str | Path, csv_name: str = "labels.csv", images: str = "images") -> Dataset:
    """OSV-5M layout: ``root/labels.csv`` (or ``test.csv``) and ``root/images/<id>.jpg``."""
    root = Path(root)
    return load_csv(root / csv_name, root / images, "id", "latitude", "longitude", "{id}.jpg", name="osv5m")


def load_im2gps3k(csv_path: str | Path, image_dir: str | Path) -> Dataset:
    """Im2GPS3k: ``im2gps3k_places365.csv`` (IMG_ID, LAT, LON; swapped header detected) + images."""
    return load_csv(csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="im2gps3k", fix_swapped=True)


def load_yfcc4k(csv_path: str | Path, image_dir: str | Path) -> Dataset:
    """YFCC4k: IMG_ID, LAT, LON + images."""
    return load_csv(csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="yfcc4k", fix_swapped=True)


def load_mp16_pro(csv_path: str | Path, image_dir: str | Path) -> Dataset:
    """MP16-Pro: IMG_ID, LAT, LON (+ city, state, country) + images."""
    return load_csv(csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="mp16-pro")


LOADERS = {"osv5m": load_osv5m, "im2gps3k": load_im2gps3k, "yfcc4k": load_yfcc4k, "mp16-pro": load_mp16_pro}

LAYOUTS = ("csv", "im2gps3k", "mp16-pro", "osv5m", "yfcc4k")
"""Built-in benchmark layouts; plug-ins add theirs under the entry-point group ``geolocate.datasets``."""


def layouts() -> list[str]:
    """Built-in layouts, then plug-in ones."""
    from geolocate.tools.plugins import plugin_names

    return list(LAYOUTS) + [n for n in plugin_names("geolocate.datasets") if n not in LAYOUTS]


def load_dataset(
    layout: str = "csv",
    *,
    data: str | Path | None = None,
    labels: str | Path | None = None,
    images: str | Path | None = None,
    id_col: str = "id",
    lat_col: str = "latitude",
    lon_col: str = "longitude",
    pattern: str = "{id}.jpg",
    limit: int | None = None,
) -> Dataset:
    """The one dataset dispatch, used by evaluation, ablations and training.

    ``osv5m`` reads ``data/labels.csv`` and ``data/images/``; ``csv`` reads any ``labels`` CSV with the
    column names and the image ``pattern``; the other layouts read ``labels`` and ``images``. A plug-in
    layout (entry-point group ``geolocate.datasets``, or ``module:attr``) is called with these keyword
    arguments and returns a :class:`Dataset`.

    Raises:
        UnknownNameError: unknown layout; ValueError: a needed path is missing; FileNotFoundError,
        KeyError: from the loaders.
    """
    from geolocate.tools.errors import UnknownNameError
    from geolocate.tools.plugins import import_spec, is_import_spec, load_plugin

    if layout == "osv5m":
        if not data:
            raise ValueError("--dataset osv5m needs --data DIR")
        ds = load_osv5m(data)
    elif layout in LAYOUTS:
        if not (labels and images):
            raise ValueError(f"a {layout} dataset needs --labels CSV and --images DIR")
        if layout == "csv":
            ds = load_csv(labels, images, id_col, lat_col, lon_col, pattern)
        else:
            ds = LOADERS[layout](labels, images)
    else:
        loader = load_plugin("geolocate.datasets", layout) or (
            import_spec(layout, "dataset layout") if is_import_spec(layout) else None
        )
        if loader is None:
            raise UnknownNameError("dataset layout", layout, layouts())
        ds = loader(
            data=data,
            labels=labels,
            images=images,
            id_col=id_col,
            lat_col=lat_col,
            lon_col=lon_col,
            pattern=pattern,
        )
    return ds.subset(limit)


_ID_COLS = ("id", "IMG_ID", "img_id", "image_id")
_LAT_COLS = ("pred_latitude", "pred_lat", "latitude", "lat", "LAT")
_LON_COLS = ("pred_longitude", "pred_lon", "longitude", "lon", "lng", "LON")


def _pick(cols: Sequence[str], names: Sequence[str], what: str, path: Path) -> str:
    for n in names:
        if n in cols:
            return n
    raise KeyError(f"{path.name}: no {what} column (looked for {', '.join(names)}); columns are {list(cols)}")


def load_prediction_records(predictions_csv: str | Path, labels_csv: str | Path) -> list[dict]:
    """Join external predictions (id, lat, lon; e.g. ``pred_latitude``/``pred_longitude``) with labels
    (id, latitude/LAT, longitude/LON) into runner-style records. Label ids without a prediction are
    returned without ``pred_lat`` (scored as misses).

    Raises:
        FileNotFoundError, KeyError (missing columns, listing those found), ValueError (bad numbers).
    """
    pp, lp = Path(predictions_csv), Path(labels_csv)
    for p in (pp, lp):
        if not p.is_file():
            raise FileNotFoundError(f"file not found: {p}")
    with open(pp, newline="", encoding="utf-8-sig") as f:
        r = csv.DictReader(f)
        cols = r.fieldnames or []
        i, la, lo = (
            _pick(cols, _ID_COLS, "id", pp),
            _pick(cols, _LAT_COLS, "latitude", pp),
            _pick(cols, _LON_COLS, "longitude", pp),
        )
        preds = {row[i]: (float(row[la]), float(row[lo])) for row in r}
    with open(lp, newline="", encoding="utf-8-sig") as f:
        r = csv.DictReader(f)
        cols = r.fieldnames or []
        i, la, lo = (
            _pick(cols, _ID_COLS, "id", lp),
            _pick(cols, _LAT_COLS[2:], "latitude", lp),
            _pick(cols, _LON_COLS[2:], "longitude", lp),
        )
        recs = []
        for row in r:
            rec = {"id": row[i], "lat": float(row[la]), "lon": float(row[lo])}
            if row[i] in preds:
                rec["pred_lat"], rec["pred_lon"] = preds[row[i]]
                rec["error_km"] = float(
                    haversine_km(rec["pred_lat"], rec["pred_lon"], rec["lat"], rec["lon"])
                )
            recs.append(rec)
    return recs
