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
import io
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geolocate.tools.errors import GeolocateError
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


class DatasetError(GeolocateError, ValueError):
    """A labels or predictions file that cannot be used as it is; the message is one line naming the
    file, and the row where one is at fault (the CLI prints it and exits 2)."""


DEDUPE = ("error", "first")
"""What to do with label ids that appear more than once: refuse (default), or keep the first row."""


def read_csv_rows(path: Path, what: str = "labels") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the rows (with their 1-based line numbers in the file, header = line 1) of a
    UTF-8 CSV (a byte-order mark is allowed).

    Raises:
        DatasetError: not UTF-8 text (with the byte offset), no header, a row with more or fewer
            fields than the header, no rows at all.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte offset {e.start}); save the {what} file as UTF-8 CSV"
        ) from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DatasetError(f"{path}: empty file (no header line)")
        rows = []
        for fields in reader:
            if not fields or not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise DatasetError(
                    f"{path}, line {reader.line_num}: {len(fields)} field(s), but the header has "
                    f"{len(header)} ({', '.join(header)})"
                )
            rows.append((reader.line_num, dict(zip(header, fields))))
    except csv.Error as e:
        raise DatasetError(f"{path}: not a CSV file ({e})") from None
    if not rows:
        raise DatasetError(f"{path}: the header is there but no {what} rows follow")
    return header, rows


def parse_coordinate(text: str, what: str, where: str) -> float:
    """A finite latitude or longitude in WGS84 degrees from a CSV cell.

    >>> parse_coordinate(" 59.91 ", "latitude", "row 2")
    59.91

    Raises:
        DatasetError: not a number, NaN or infinite, or out of range (|lat| > 90, |lon| > 180).
    """
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{where}: {what} {text!r} is not a finite number")
    limit = 90.0 if what == "latitude" else 180.0
    if abs(x) > limit:
        raise DatasetError(f"{where}: {what} {x:g} is out of range [-{limit:g}, {limit:g}]")
    return x


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))


def load_csv(
    csv_path: str | Path,
    image_dir: str | Path,
    id_col: str = "id",
    lat_col: str = "latitude",
    lon_col: str = "longitude",
    image_pattern: str = "{id}.jpg",
    name: str | None = None,
    fix_swapped: bool = False,
    dedupe: str = "error",
) -> Dataset:
    """Any CSV plus an image folder. ``image_pattern`` maps an id to a file name (``{id}.jpg``).

    Rows whose image file is missing are skipped with a warning. Label ids that appear twice are an
    error listing them, or with ``dedupe="first"`` the first row of each is kept (with a warning).

    Raises:
        FileNotFoundError: the CSV or image folder does not exist.
        KeyError: a named column is missing (the message lists the columns found).
        DatasetError (a ValueError): not UTF-8, no rows, a short or long row, a coordinate that is not
            a finite number in range, duplicate ids, or no image of any row in the folder.
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    if dedupe not in DEDUPE:
        raise ValueError(f"unknown dedupe rule {dedupe!r}; valid: {', '.join(DEDUPE)}")
    if not csv_path.is_file():
        raise FileNotFoundError(f"labels file not found: {csv_path}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    if "{id}" not in image_pattern:
        raise ValueError(f"the image pattern {image_pattern!r} must contain {{id}}")
    cols, rows = read_csv_rows(csv_path)
    for c in (id_col, lat_col, lon_col):
        if c not in cols:
            raise KeyError(f"column {c!r} not in {csv_path.name}; columns are {cols}")
    dups = _duplicates([r[id_col] for _, r in rows])
    if dups and dedupe == "error":
        more = f" and {len(dups) - 10} more" if len(dups) > 10 else ""
        raise DatasetError(
            f"{csv_path}: {len(dups)} id(s) appear more than once ({', '.join(dups[:10])}{more}); fix the "
            "file or pass --dedupe first to keep the first row of each"
        )
    if dups:
        log.warning("%s: %d duplicate id(s); keeping the first row of each", csv_path.name, len(dups))
        first: dict[str, tuple[int, dict]] = {}
        for n, r in rows:
            first.setdefault(r[id_col], (n, r))
        rows = list(first.values())
    where = [f"{csv_path.name}, line {n} (id {r[id_col]!r})" for n, r in rows]
    lats = [parse_coordinate(r[lat_col], "latitude" if not fix_swapped else "coordinate", w)
            for (_, r), w in zip(rows, where)]  # fmt: skip
    lons = [parse_coordinate(r[lon_col], "longitude", w) for (_, r), w in zip(rows, where)]
    if fix_swapped and _looks_swapped(lats, lons):
        log.warning(
            "%s: the %s/%s columns look swapped (an old Im2GPS3k release); swapping them back",
            csv_path.name,
            lat_col,
            lon_col,
        )
        lats, lons = lons, lats
    samples, missing = [], []
    for (_, r), la, lo, w in zip(rows, lats, lons, where):
        if abs(la) > 90:
            raise DatasetError(f"{w}: latitude {la:g} is out of range [-90, 90]")
        try:
            p = image_dir / image_pattern.format(id=r[id_col])
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"the image pattern {image_pattern!r} cannot be filled ({e})") from None
        if not p.is_file():
            missing.append(p.name)
            continue
        labels = {k: v for k, v in r.items() if k not in (id_col, lat_col, lon_col) and v is not None}
        samples.append(Sample(r[id_col], p, la, lo, labels))
    if not samples:
        raise DatasetError(
            f"{image_dir}: none of the {len(rows)} images of {csv_path.name} is there (pattern "
            f"{image_pattern!r}, e.g. {missing[0]})"
        )
    if missing:
        log.warning(
            "%s: %d of %d images not found in %s (e.g. %s); skipped",
            csv_path.name,
            len(missing),
            len(rows),
            image_dir,
            missing[0],
        )
    return Dataset(name or csv_path.stem, samples)


def _looks_swapped(lats: list[float], lons: list[float]) -> bool:
    if any(abs(x) > 90 for x in lats) and all(abs(y) <= 90 for y in lons):
        return True
    if len(lats) >= 100:
        return sum(abs(x) for x in lats) / len(lats) > sum(abs(y) for y in lons) / len(lons)
    return False


def load_osv5m(
    root: str | Path, csv_name: str = "labels.csv", images: str = "images", dedupe: str = "error"
) -> Dataset:
    """OSV-5M layout: ``root/labels.csv`` (or ``test.csv``) and ``root/images/<id>.jpg``."""
    root = Path(root)
    return load_csv(
        root / csv_name, root / images, "id", "latitude", "longitude", "{id}.jpg", name="osv5m", dedupe=dedupe
    )


def load_im2gps3k(csv_path: str | Path, image_dir: str | Path, dedupe: str = "error") -> Dataset:
    """Im2GPS3k: ``im2gps3k_places365.csv`` (IMG_ID, LAT, LON; swapped header detected) + images."""
    return load_csv(
        csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="im2gps3k", fix_swapped=True, dedupe=dedupe
    )


def load_yfcc4k(csv_path: str | Path, image_dir: str | Path, dedupe: str = "error") -> Dataset:
    """YFCC4k: IMG_ID, LAT, LON + images."""
    return load_csv(
        csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="yfcc4k", fix_swapped=True, dedupe=dedupe
    )


def load_mp16_pro(csv_path: str | Path, image_dir: str | Path, dedupe: str = "error") -> Dataset:
    """MP16-Pro: IMG_ID, LAT, LON (+ city, state, country) + images."""
    return load_csv(csv_path, image_dir, "IMG_ID", "LAT", "LON", "{id}", name="mp16-pro", dedupe=dedupe)


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
    dedupe: str = "error",
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
        ds = load_osv5m(data, dedupe=dedupe)
    elif layout in LAYOUTS:
        if not (labels and images):
            raise ValueError(f"a {layout} dataset needs --labels CSV and --images DIR")
        if layout == "csv":
            ds = load_csv(labels, images, id_col, lat_col, lon_col, pattern, dedupe=dedupe)
        else:
            ds = LOADERS[layout](labels, images, dedupe=dedupe)
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
    (id, latitude/LAT, longitude/LON) into runner-style records. Label ids without a prediction, and
    predictions that are not finite numbers in range (NaN, inf, 200), are scored as misses; the latter
    with a warning naming the row.

    Raises:
        FileNotFoundError; KeyError (missing columns, listing those found); DatasetError (not UTF-8,
        short rows, bad label coordinates, duplicate ids in either file).
    """
    pp, lp = Path(predictions_csv), Path(labels_csv)
    for p in (pp, lp):
        if not p.is_file():
            raise FileNotFoundError(f"file not found: {p}")
    cols, rows = read_csv_rows(pp, "predictions")
    i, la, lo = (
        _pick(cols, _ID_COLS, "id", pp),
        _pick(cols, _LAT_COLS, "latitude", pp),
        _pick(cols, _LON_COLS, "longitude", pp),
    )
    if dups := _duplicates([r[i] for _, r in rows]):
        raise DatasetError(f"{pp}: {len(dups)} id(s) predicted more than once ({', '.join(dups[:10])})")
    preds: dict[str, tuple[float, float]] = {}
    for n, r in rows:
        try:
            where = f"{pp.name}, line {n} (id {r[i]!r})"
            lat = parse_coordinate(r[la], "latitude", where)
            preds[r[i]] = (lat, parse_coordinate(r[lo], "longitude", where))
        except DatasetError as e:
            log.warning("%s; scored as a miss", e)
    cols, rows = read_csv_rows(lp)
    i, la, lo = (
        _pick(cols, _ID_COLS, "id", lp),
        _pick(cols, _LAT_COLS[2:], "latitude", lp),
        _pick(cols, _LON_COLS[2:], "longitude", lp),
    )
    if dups := _duplicates([r[i] for _, r in rows]):
        raise DatasetError(f"{lp}: {len(dups)} id(s) appear more than once ({', '.join(dups[:10])})")
    recs = []
    for n, row in rows:
        where = f"{lp.name}, line {n} (id {row[i]!r})"
        rec = {
            "id": row[i],
            "lat": parse_coordinate(row[la], "latitude", where),
            "lon": parse_coordinate(row[lo], "longitude", where),
        }
        if row[i] in preds:
            rec["pred_lat"], rec["pred_lon"] = preds[row[i]]
            rec["error_km"] = float(haversine_km(rec["pred_lat"], rec["pred_lon"], rec["lat"], rec["lon"]))
        recs.append(rec)
    return recs
