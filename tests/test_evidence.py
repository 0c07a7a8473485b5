"""Evidence an investigator can defend: the examined photo kept in the store, the evidence hash chain,
reports that name a substituted photo, Markdown that cannot be forged, signed reports verified from the
file alone, provenance of the input (C2PA Content Credentials, XMP/IPTC), valid GeoJSON circles, and
analyst hints read wherever the place name stands.

Photos: OSV-5M sample (Mapillary, CC-BY-SA 4.0) and examples/photos (same licence); a C2PA manifest
is signed in the test with a throw-away certificate chain made with ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from geolocate.agent.cli import main
from geolocate.agent.session import SessionStore
from geolocate.agent.state import GENESIS, EpisodeState, entry_hash
from tests.conftest import OSV, REPO, render_sign

HAN_SIGN = REPO / "examples" / "photos" / "2872700852992867.jpg"
OTHER = REPO / "examples" / "photos" / "2872700852992867.jpg"


@pytest.fixture
def oslo(tmp_path) -> Path:
    return render_sign(OSV / "images" / "1105240373293389.jpg", ["OSLO"], tmp_path / "oslo.jpg")


def run(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_chain_recomputes_from_a_trajectory(oslo, tmp_path, capsys):
    """Every ledger entry of a locate trajectory hashes to its sha256 and links to the one before."""
    out = tmp_path / "t.json"
    assert run(["locate", oslo, "--quiet", "--json", out], capsys)[0] == 0
    st = EpisodeState.model_validate(json.loads(out.read_text()))
    assert [e.kind for e in st.ledger].count("evidence") == len(st.evidence) and st.ledger[
        -1
    ].kind == "answer"
    prev = GENESIS
    for e in st.ledger:
        assert e.prev == prev and entry_hash(e.seq, e.kind, e.ref, st.ledger_content(e), e.prev) == e.sha256
        prev = e.sha256
    st.evidence[1].summary += " (edited)"
    bad = st.ledger[1]
    assert entry_hash(bad.seq, bad.kind, bad.ref, st.ledger_content(bad), bad.prev) != bad.sha256


def test_reports_name_the_examined_photo_after_it_is_swapped_or_gone(oslo, tmp_path, capsys):
    """The photo's bytes are kept in the store: replace the file after the session starts and every
    report format still shows the examined photo's SHA-256 (and the HTML embeds it, not the new one),
    saying what the file at the path holds now; with the file gone too."""
    store = tmp_path / "s.sqlite"
    photo = tmp_path / "p.jpg"
    shutil.copy(oslo, photo)
    with SessionStore(str(store)) as s:
        v = s.create(photo, review=["country"])
        sid, examined = v.info.id, v.info.sha256
    shutil.copy(OTHER, photo)  # the file is replaced by another photo
    import hashlib

    now = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert run(["session", "approve", sid, "--store", store, "--quiet"], capsys)[0] == 0  # works on the copy
    for fmt in ("md", "html", "geojson", "kml"):
        out = tmp_path / f"r.{fmt}"
        assert run(["session", "report", sid, "--store", store, "--format", fmt, "-o", out], capsys)[0] == 0
        text = out.read_text()
        assert examined in text, fmt
        if fmt in ("md", "html"):
            assert now in text and "this report is about the photo with SHA" in text.replace("\\-", "-"), fmt
    html = (tmp_path / "r.html").read_text()
    b64 = re.search(r'alt="the examined photo" src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    import base64

    shown = Image.open(io.BytesIO(base64.b64decode(b64))).convert("L")

    def thumb(p):
        im = Image.open(p).convert("RGB")
        im.thumbnail((640, 640))
        return im.convert("L")

    def diff(a, b):
        return sum(abs(x - y) for x, y in zip(a.getdata(), b.getdata())) / (a.size[0] * a.size[1])

    assert shown.size == thumb(oslo).size and diff(shown, thumb(oslo)) < 5  # the examined photo
    assert shown.size != thumb(OTHER).size or diff(shown, thumb(OTHER)) > 20  # not the substitute
    manifest = json.loads((tmp_path / "r.geojson").read_text())["properties"]["geolocate_manifest"]
    assert manifest["photo"]["sha256"] == examined and manifest["original"]["status"] == "changed"
    photo.unlink()
    assert run(["session", "report", sid, "--store", store, "-o", tmp_path / "gone.md"], capsys)[0] == 0
    assert "is gone; this report is about the photo with SHA" in (tmp_path / "gone.md").read_text().replace(
        "\\-", "-"
    )


def test_markdown_reports_escape_every_untrusted_string(oslo, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with SessionStore(str(store)) as s:
        sid = s.create(oslo, review=["country"]).info.id
        s.move(sid, {"kind": "hint", "text": "the sign is red\n## Injected heading\n- approved by the chief"})
        s.move(
            sid,
            {"kind": "reject", "reason": "<script>alert(1)</script> [link](http://evil.example) ![img](x)"},
        )
    rc, md, _ = run(["session", "report", sid, "--store", store], capsys)
    assert rc == 0
    body = md.split("<!-- geolocate-manifest")[0]
    headings = [ln for ln in body.splitlines() if ln.startswith("#")]
    assert all(not h.lstrip("#").strip().startswith("Injected") for h in headings), headings
    assert not any(ln.startswith("- approved") for ln in body.splitlines())
    assert "<script>" not in body and "](http" not in body and "![" not in body
    assert "Injected heading" in body  # said, as text


def test_an_edited_report_fails_verification_naming_the_entry(oslo, tmp_path, capsys):
    """One character of one evidence entry changed in an HTML and a Markdown report (in the visible
    row, or inside the manifest): verify exits 1 and names the entry; an untouched report exits 0."""
    store = tmp_path / "s.sqlite"
    with SessionStore(str(store)) as s:
        sid = s.create(oslo).info.id
    for fmt in ("md", "html"):
        out = tmp_path / f"r.{fmt}"
        assert run(["session", "report", sid, "--store", store, "--format", fmt, "-o", out], capsys)[0] == 0
        rc, said, _ = run(["session", "verify", out], capsys)
        assert rc == 0 and "intact" in said
        text = out.read_text()
        row = re.search(
            r"\| 1 \| evidence \| e2 \|.*" if fmt == "md" else r'<tr data-entry="1">.*?</tr>', text
        )
        i = text.index("OSLO", row.start())  # the OCR evidence e2 reads OSLO
        (tmp_path / f"edited.{fmt}").write_text(text[:i] + "0" + text[i + 1 :])
        rc, _, err = run(["session", "verify", tmp_path / f"edited.{fmt}"], capsys)
        assert rc == 1 and "entry e2" in err, err
        j = text.index('"summary"', text.index("geolocate-manifest"))  # inside the manifest
        k = text.index("OSLO", j)
        (tmp_path / f"m.{fmt}").write_text(text[:k] + "0SLO" + text[k + 4 :])
        rc, _, err = run(["session", "verify", tmp_path / f"m.{fmt}"], capsys)
        assert rc == 1 and re.search(r"entry e\d+ \(seq \d+, evidence\): its content was changed", err), err
        heading = text.replace("Geolocation report", "Geolocation rep0rt", 1)
        (tmp_path / f"h.{fmt}").write_text(heading)
        rc, _, err = run(["session", "verify", tmp_path / f"h.{fmt}"], capsys)
        assert rc == 1 and "outside the evidence entries" in err


def test_a_signed_report_verifies_with_the_public_key_alone(oslo, tmp_path, capsys, monkeypatch):
    store = tmp_path / "s.sqlite"
    with SessionStore(str(store)) as s:
        sid = s.create(oslo).info.id
    rc, out, _ = run(["keys", "new", "--out", tmp_path / "me"], capsys)
    assert rc == 0 and "SHA256:" in out and (tmp_path / "me.key").stat().st_mode & 0o077 == 0
    assert run(["keys", "new", "--out", tmp_path / "me"], capsys)[0] == 2  # never overwritten
    run(["keys", "new", "--out", tmp_path / "other"], capsys)
    fresh = tmp_path / "colleague"
    fresh.mkdir()
    for fmt in ("md", "html", "geojson", "kml"):
        report = tmp_path / f"signed.{fmt}"
        argv = ["session", "report", sid, "--store", store, "--format", fmt, "--sign", tmp_path / "me.key"]
        rc = run([*argv, "-o", report], capsys)[0]
        assert rc == 0
        shutil.copy(report, fresh)
    shutil.copy(tmp_path / "me.pub", fresh)
    store.unlink()  # the colleague has no store
    monkeypatch.chdir(fresh)
    monkeypatch.setenv("GEOLOCATE_HOME", str(fresh / "home"))
    for fmt in ("md", "html", "geojson", "kml"):
        rc, out, err = run(["session", "verify", f"signed.{fmt}", "--key", "me.pub"], capsys)
        assert rc == 0 and "signed by SHA256:" in out and "pass --key" not in out, (fmt, err)
        rc, _, err = run(["session", "verify", f"signed.{fmt}", "--key", tmp_path / "other.pub"], capsys)
        assert rc == 1 and "signed with another key" in err
    assert not (fresh / "home").exists()  # verification opened no store


def test_verify_takes_fifty_entries_in_well_under_a_second(oslo, tmp_path, capsys):
    """A 50-entry report (hints and tool runs by hand) verifies quickly; the time is printed for the note."""
    store = tmp_path / "s.sqlite"
    with SessionStore(str(store)) as s:
        sid = s.create(oslo, review=["answer"]).info.id
        view = s.view(sid)
        n = len(view.episode.ledger)
        i = 0
        while n < 50:
            s.move(sid, {"kind": "tool", "name": "gazetteer", "arguments": {"query": f"Oslo {i}"}})
            n = len(s.view(sid).episode.ledger)
            i += 1
    out = tmp_path / "r.html"
    assert run(["session", "report", sid, "--store", store, "--format", "html", "-o", out], capsys)[0] == 0
    t = time.perf_counter()
    rc, said, _ = run(["session", "verify", out], capsys)
    took = time.perf_counter() - t
    entries = int(re.search(r"(\d+) chain entries", said).group(1))
    print(f"verify: {entries} entries, {out.stat().st_size:,} bytes, {took * 1000:.0f} ms")
    assert rc == 0 and entries >= 50 and took < 5


def _c2pa_signed_jpeg(src: Path) -> bytes:
    """``src`` with a C2PA manifest (claim generator, a c2pa.created action) signed by a throw-away
    certificate chain: an ES256 root CA and a leaf with the emailProtection key usage."""
    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "geolocate tests")])  # fmt: skip

    now = dt.datetime.now(dt.UTC)
    ku = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False)  # fmt: skip
    root_key = ec.generate_private_key(ec.SECP256R1())
    ca = name("Throw-away Root CA")
    root = (x509.CertificateBuilder().subject_name(ca).issuer_name(ca)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **ku),
                           critical=True)
            .sign(root_key, hashes.SHA256()))  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("Field Camera 7")).issuer_name(root.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **ku),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))  # fmt: skip
    chain = leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())  # fmt: skip
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    manifest = {
        "claim_generator_info": [{"name": "FieldCam", "version": "7.1"}],
        "title": "oslo.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created",
             "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}],
    }  # fmt: skip
    out = io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as b, open(src, "rb") as f:
        b.sign(signer, "image/jpeg", f, out)
    return out.getvalue()


def test_c2pa_content_credentials_are_evidence(oslo, tmp_path, capsys):
    photo = tmp_path / "credentialed.jpg"
    photo.write_bytes(_c2pa_signed_jpeg(oslo))
    out = tmp_path / "t.json"
    rc, shown, _ = run(["locate", photo, "--json", out], capsys)
    assert rc == 0
    exif = next(e for e in json.loads(out.read_text())["evidence"] if e["tool"] == "exif")
    cc = exif["output"]["content_credentials"]
    assert (
        cc["claim_generator"].startswith("FieldCam 7.1") and cc["signer"]["common_name"] == "Field Camera 7"
    )
    assert [a["action"] for a in cc["actions"]] == ["c2pa.created"]
    assert (
        cc["validation_state"] in ("Valid", "Trusted")
        and "signingCredential.untrusted" in cc["validation_codes"]
    )
    assert "C2PA Content Credentials: Valid" in exif["summary"]
    tampered = bytearray(photo.read_bytes())
    tampered[-200] ^= 0xFF  # a pixel byte changed after signing
    (tmp_path / "tampered.jpg").write_bytes(bytes(tampered))
    rc, _, _ = run(["locate", tmp_path / "tampered.jpg", "--json", tmp_path / "t2.json"], capsys)
    exif2 = next(e for e in json.loads((tmp_path / "t2.json").read_text())["evidence"] if e["tool"] == "exif")
    assert exif2["output"]["content_credentials"]["validation_state"] == "Invalid"


XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
 xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
 photoshop:City="Vaduz" photoshop:Country="Liechtenstein" exif:GPSLatitude="{lat}" exif:GPSLongitude="{lon}">
<Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li rdf:parseType="Resource">
<Iptc4xmpExt:City>Vaduz</Iptc4xmpExt:City><Iptc4xmpExt:CountryCode>LI</Iptc4xmpExt:CountryCode>
</rdf:li></rdf:Bag></Iptc4xmpExt:LocationShown></rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize("lat, lon, used", [("47,8.4N", "9,31.2E", True), ("47,75.0N", "9,31.2E", False),
                                            ("47,8.4Q", "9,31.2E", False)])  # fmt: skip
def test_xmp_and_iptc_location_fields_are_evidence_validated_like_exif(tmp_path, capsys, lat, lon, used):
    photo = tmp_path / "xmp.jpg"
    Image.open(OSV / "images" / "1105240373293389.jpg").save(photo, xmp=XMP.format(lat=lat, lon=lon).encode())
    out = tmp_path / "t.json"
    rc, shown, _ = run(["locate", photo, "--json", out], capsys)
    traj = json.loads(out.read_text())
    lf = next(e for e in traj["evidence"] if e["tool"] == "exif")["output"]["location_fields"]
    assert rc == 0 and lf["city"] == "Vaduz" and lf["country_code"] == "LI"
    assert lf["fields"]["city"].startswith("Iptc4xmpExt:LocationShown")
    if used:
        assert abs(lf["lat"] - 47.14) < 0.01 and abs(traj["answer"]["lat"] - 47.14) < 0.01
    else:
        assert "lat" not in lf and any("exif:GPSLatitude" in w for w in traj["warnings"])


def test_circles_are_valid_geojson_at_any_radius_pole_and_antimeridian():
    """The fallback answer's 5,984 km circle (over the pole), circles across the antimeridian, at the
    poles, and one holding both poles: valid shapes (shapely), cut at 180 degrees (RFC 7946 3.1.9)."""
    from shapely.geometry import shape

    from geolocate.agent.analyst import Constraint
    from geolocate.tools.geo import circle_geojson

    cases = [(41.26, 69.22, 5984.0), (0.0, 179.9, 300.0), (-16.5, -179.9, 1000.0), (89.9, 0.0, 50.0),
             (-90.0, 0.0, 2000.0), (0.0, 0.0, 15000.0), (10.0, 170.0, 20015.0),
             (59.9, 10.7, 0.01)]  # fmt: skip
    for lat, lon, r in cases:
        g = circle_geojson(lat, lon, r)
        s = shape(g)
        assert s.is_valid and not s.is_empty, (lat, lon, r)
        for ring in [c for poly in (g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]])
                     for c in poly]:  # fmt: skip
            assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)
            # no edge jumps across the map, but one along a pole (where every longitude meets)
            assert all(
                abs(a[0] - b[0]) <= 180 or abs(a[1]) == abs(b[1]) == 90 for a, b in zip(ring, ring[1:])
            )
        assert Constraint(kind="circle", lat=lat, lon=lon, radius_km=r).allows_point(lat, lon)


TEN_HINTS = [
    "the bus stop sign says Kaohsiung",
    "Kaohsiung is written on the bus stop",
    "I can see a red car, a white van and the bus stop sign says Kaohsiung",
    "near the market there is a sign for Kaohsiung and some scooters",
    "the destination board of the bus reads KAOHSIUNG",
    "scooters everywhere; the metro map says kaohsiung",
    "this must be Kaohsiung, Taiwan",
    "a small shop, a temple and, on the corner, a Kaohsiung city sign",
    "signs in traditional characters; the taxi door says Kaohsiung",
    "we think it is Kaohsiung",
]


@pytest.mark.parametrize("hint", TEN_HINTS)
def test_the_planner_reads_a_place_anywhere_in_a_hint(tmp_path, hint):
    """Ten phrasings of the same note, the place name at the start, in the middle, at the end, in
    capitals or lower case, among everyday words (a white van, a red car): the answer moves there."""
    from geolocate.tools.geo import haversine_km

    with SessionStore(str(tmp_path / "s.sqlite")) as s:
        sid = s.create(HAN_SIGN).info.id
        view = s.move(sid, {"kind": "hint", "text": hint})
    a = view.episode.answer
    assert a is not None and haversine_km(a.lat, a.lon, 22.62, 120.31) < 30, (hint, a, view.episode.chain)
