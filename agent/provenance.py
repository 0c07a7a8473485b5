"""Evidence an investigator can defend: the hash chain of a session, signed report manifests, and
verification from the report file alone.

Every evidence entry, commitment, backtrack and answer of an episode is a link of a hash chain
(:class:`~geolocate.agent.state.LedgerEntry`, written by the Episode as it happens). A report embeds a
**manifest** in machine-readable form:

* ``format`` (:data:`REPORT_FORMAT`), the session, the examined photo's SHA-256 and size (the copy kept
  in the session store) and what became of the original file;
* every chain entry with its full content, ``prev`` and ``sha256``, and the chain head;
* ``body_sha256``: the SHA-256 of the report with the manifest taken out (:func:`split`);
* optionally ``signature``: Ed25519 (RFC 8032, ``cryptography``) over the RFC 8785 canonical JSON of
  the manifest without its signature, with the public key and its fingerprint.

:func:`verify_report` recomputes all of it **from the report file alone** (a colleague without the
store can run it): each entry's hash and link, the chain head, the rendering of each entry in the
report's text (a changed character in a row names its entry), the body hash and the signature. The
first difference is named.

Markdown embeds the manifest in a fenced ``json`` block after the line :data:`MD_MARK`; HTML in
``<script type="application/json" id="geolocate-manifest">``; GeoJSON in the FeatureCollection's
``properties.geolocate_manifest``; KML in the Document's ``ExtendedData`` (``geolocate_manifest``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolocate.agent.state import GENESIS, EpisodeState, LedgerEntry, entry_hash

REPORT_FORMAT = "geolocate.report/1"
"""The manifest's format version (what :func:`verify_report` knows how to check)."""
MD_MARK = "<!-- geolocate-manifest: the machine-readable record of this report; do not edit -->"
HTML_OPEN = '<script type="application/json" id="geolocate-manifest">'
HTML_CLOSE = "</script>"
KML_PLACEHOLDER = "GEOLOCATE-MANIFEST-PLACEHOLDER"


class ProvenanceError(ValueError):
    """A report whose manifest cannot be read, or a key that cannot be used (one line)."""


# -- the chain of a state -----------------------------------------------------------------------------
def ledger_of(ep: EpisodeState) -> tuple[list[LedgerEntry], bool]:
    """The episode's hash chain, and whether it was recorded as it happened (False: a state from
    before the chain existed, whose chain is made now from its evidence, chain and answer)."""
    if ep.ledger or not (ep.evidence or ep.chain or ep.answer):
        return list(ep.ledger), True
    out: list[LedgerEntry] = []

    def add(kind: str, ref: str, content: dict) -> None:
        prev = out[-1].sha256 if out else GENESIS
        seq = len(out)
        out.append(
            LedgerEntry(
                seq=seq,
                kind=kind,
                ref=ref,
                content=None if kind == "evidence" else content,
                prev=prev,
                sha256=entry_hash(seq, kind, ref, content, prev),
            )
        )

    for e in ep.evidence:
        add("evidence", e.id, e.model_dump(mode="json"))
    for lv, c in ep.chain.items():
        add("commit", lv.value, c.model_dump(mode="json"))
    if ep.answer is not None:
        add("answer", "answer", ep.answer.model_dump(mode="json"))
    return out, False


def manifest_entries(ep: EpisodeState) -> list[dict[str, Any]]:
    """The chain as manifest entries: ``seq``, ``kind``, ``ref``, ``content`` (in full), ``prev``,
    ``sha256``."""
    entries, _live = ledger_of(ep)
    shadow = ep.model_copy(update={"ledger": entries})
    return [
        {
            "seq": e.seq,
            "kind": e.kind,
            "ref": e.ref,
            "content": shadow.ledger_content(e),
            "prev": e.prev,
            "sha256": e.sha256,
        }
        for e in entries
    ]


def check_chain(entries: list[dict[str, Any]]) -> str | None:
    """The first entry whose hash or link is wrong, described, or None when the chain is intact."""
    prev = GENESIS
    for i, e in enumerate(entries):
        try:
            got = entry_hash(int(e["seq"]), str(e["kind"]), str(e["ref"]), e["content"], str(e["prev"]))
        except (KeyError, TypeError, ValueError) as x:
            return f"entry {i} is malformed ({type(x).__name__}: {x})"
        name = f"entry {e['ref']} (seq {e['seq']}, {e['kind']})"
        if e["seq"] != i:
            return f"{name}: out of order (expected seq {i})"
        if e["prev"] != prev:
            return f"{name}: its link to the previous entry is broken (an entry was removed or reordered)"
        if got != e["sha256"]:
            return f"{name}: its content was changed (it no longer hashes to {str(e['sha256'])[:16]}...)"
        prev = e["sha256"]
    return None


def final_chain(entries: list[dict[str, Any]]) -> tuple[dict[str, dict], dict | None]:
    """The Chain of Region and the answer the entries leave (commits set a level, backtracks remove
    levels, a reopening sets the answer aside): (level -> commit content, answer content or None)."""
    chain: dict[str, dict] = {}
    answer = None
    for e in entries:
        c = e.get("content") or {}
        if e["kind"] == "commit":
            chain[e["ref"]] = c
        elif e["kind"] == "backtrack":
            for lv in c.get("removed", []):
                chain.pop(lv, None)
        elif e["kind"] == "answer":
            answer = c
        elif e["kind"] == "reopen":
            answer = None
    from geolocate.agent.stages import LEVELS

    order = {lv.value: i for i, lv in enumerate(LEVELS)}
    return dict(sorted(chain.items(), key=lambda kv: order.get(kv[0], 99))), answer


# -- rendering entries (the report's rows; verification renders them again) -------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~^=:$&\"'])")


def md_text(value: Any, limit: int | None = None) -> str:
    """Untrusted text made inert in Markdown: one line (line breaks and tabs become spaces), cut to
    ``limit`` characters, and every character that CommonMark or GFM could read as markup escaped
    with a backslash (headings, lists, emphasis, links, autolinks, images, code, tables, raw HTML,
    entities).

    >>> md_text("the sign is red\\n## Injected heading\\n- approved by the chief")
    'the sign is red \\\\#\\\\# Injected heading \\\\- approved by the chief'
    >>> md_text("<script>alert(1)</script> [x](http://evil)")
    '\\\\<script\\\\>alert\\\\(1\\\\)\\\\</script\\\\> \\\\[x\\\\]\\\\(http\\\\://evil\\\\)'
    """
    text = " ".join(str(value).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", text)


def describe_entry(e: dict[str, Any]) -> str:
    """One plain-text line saying what a chain entry records (for people; escaped when rendered)."""
    c = e.get("content") or {}
    kind = e["kind"]
    if kind == "evidence":
        if c.get("author") and c.get("tool") in ("hint", "constraint", "review", "conclusion"):
            return f"{c.get('tool')} by {c.get('author')} at {c.get('utc')}: {c.get('summary', '')}"
        args = json.dumps(c.get("arguments", {}), ensure_ascii=False, sort_keys=True)
        result = c.get("summary", "") if c.get("ok") else f"FAILED: {c.get('error') or c.get('summary', '')}"
        by = f"{c.get('author')} at {c.get('utc')}" if c.get("author") else "the planner"
        return f"{c.get('tool')} {args} -> {result} ({float(c.get('elapsed_s', 0)):.2f} s, by {by})"
    if kind == "commit":
        code = f" ({c.get('code')})" if c.get("code") and c.get("code") != c.get("value") else ""
        return (
            f"{e['ref']} = {c.get('value')}{code}, confidence {float(c.get('confidence', 0)):.2f}, "
            f"evidence {', '.join(map(str, c.get('evidence', []))) or '-'}"
        )
    if kind == "backtrack":
        return f"back to {e['ref']}: removed {', '.join(c.get('removed', [])) or '-'} ({c.get('reason', '')})"
    if kind == "answer":
        return (
            f"({float(c['lat']):.5f}, {float(c['lon']):.5f}) +- {float(c['radius_km']):g} km, localizability "
            f"{float(c['localizability']):.2f} ({c.get('source', 'answer')})"
        )
    return f"reopened: {c.get('reason', '')}"


def md_entry_row(e: dict[str, Any]) -> str:
    """The Markdown table row of a chain entry."""
    return (
        f"| {int(e['seq'])} | {md_text(e['kind'])} | {md_text(e['ref'])} | `{str(e['sha256'])[:16]}` | "
        f"{md_text(describe_entry(e), 400)} |"
    )


def html_entry_row(e: dict[str, Any]) -> str:
    """The HTML table row of a chain entry."""
    return (
        f'<tr data-entry="{int(e["seq"])}"><td>{int(e["seq"])}</td><td>{html.escape(str(e["kind"]))}</td>'
        f"<td>{html.escape(str(e['ref']))}</td><td><code>{html.escape(str(e['sha256'])[:16])}</code></td>"
        f"<td>{html.escape(describe_entry(e))}</td></tr>"
    )


def md_chain_row(level: str, c: dict[str, Any]) -> str:
    """The Markdown row of a committed level in the Chain of Region table."""
    code = f" ({c.get('code')})" if c.get("code") and c.get("code") != c.get("value") else ""
    return (
        f"| {md_text(level)} | {md_text(str(c.get('value')) + code)} | {float(c.get('confidence', 0)):.2f} | "
        f"{md_text(', '.join(map(str, c.get('evidence', []))))} |"
    )


def html_chain_row(level: str, c: dict[str, Any]) -> str:
    """The HTML row of a committed level in the Chain of Region table."""
    code = f" ({c.get('code')})" if c.get("code") and c.get("code") != c.get("value") else ""
    return (
        f'<tr data-level="{html.escape(level)}"><td>{html.escape(level)}</td>'
        f"<td>{html.escape(str(c.get('value')) + code)}</td><td>{float(c.get('confidence', 0)):.2f}</td>"
        f"<td>{html.escape(', '.join(map(str, c.get('evidence', []))))}</td></tr>"
    )


def answer_line(a: dict[str, Any] | None, fmt: str) -> str:
    """The answer as the report states it (Markdown or HTML), from the answer entry's content."""
    if a is None:
        return "No answer yet." if fmt == "md" else "<p>No answer yet.</p>"
    lat, lon = float(a["lat"]), float(a["lon"])
    osm = f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}"
    text = (
        f"{lat:.5f}, {lon:.5f} +- {float(a['radius_km']):g} km, localizability "
        f"{float(a['localizability']):.2f} ({a.get('source', 'answer')})"
    )
    if fmt == "md":
        return f"**{text}**; <{osm}>"
    link = f'<a href="{html.escape(osm)}">OpenStreetMap</a>'
    return f'<p class="answer"><b>{html.escape(text)}</b> &middot; {link}</p>'


def fragments(entries: list[dict[str, Any]], fmt: str) -> list[tuple[str, str]]:
    """(what, text) pairs that a report in ``fmt`` (md or html) must contain verbatim for these entries:
    every entry's row, the rows of the Chain of Region they leave, and the answer."""
    row = md_entry_row if fmt == "md" else html_entry_row
    out = [(f"entry {e['ref']} (seq {e['seq']}, {e['kind']})", row(e)) for e in entries]
    chain, answer = final_chain(entries)
    crow = md_chain_row if fmt == "md" else html_chain_row
    out += [(f"the Chain of Region's {lv}", crow(lv, c)) for lv, c in chain.items()]
    out.append(("the answer", answer_line(answer, fmt)))
    return out


# -- manifests: build, embed, split, sign --------------------------------------------------------------
def canonical(doc: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON (``rfc8785``)."""
    import rfc8785

    return rfc8785.dumps(doc)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed(fmt: str, body: str, manifest: dict[str, Any]) -> str:
    """The report text: ``body`` with ``manifest`` embedded the way ``fmt`` carries it."""
    doc = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True)
    if fmt == "md":
        return f"{body}{MD_MARK}\n```json\n{doc}\n```\n"
    if fmt == "html":
        safe = doc.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return body.replace("</body>", f"{HTML_OPEN}\n{safe}\n{HTML_CLOSE}\n</body>", 1)
    if fmt == "geojson":
        fc = json.loads(body)
        fc.setdefault("properties", {})["geolocate_manifest"] = manifest
        return json.dumps(fc, ensure_ascii=False, indent=1) + "\n"
    if fmt == "kml":
        return body.replace(
            KML_PLACEHOLDER, html.escape(json.dumps(manifest, ensure_ascii=False, sort_keys=True))
        )
    raise ValueError(f"unknown report format {fmt!r}")


def split(text: str) -> tuple[str, str, dict[str, Any]]:
    """(format, body, manifest) of a report's text: the inverse of :func:`embed`; ``body`` is what
    ``body_sha256`` covers.

    Raises:
        ProvenanceError: no manifest, or one that is not JSON.
    """
    try:
        if MD_MARK in text:
            body, _, rest = text.partition(MD_MARK)
            m = re.match(r"\s*```json\n(.*)\n```\s*$", rest, re.S)
            if not m:
                raise ProvenanceError("the Markdown report's manifest block is damaged")
            return "md", body, json.loads(m.group(1))
        if HTML_OPEN in text:
            start = text.index(HTML_OPEN)
            end = text.index(HTML_CLOSE, start)
            body = text[:start] + text[end + len(HTML_CLOSE) + 1 :]
            return "html", body, json.loads(text[start + len(HTML_OPEN) : end])
        if "geolocate_manifest" in text and text.lstrip().startswith("{"):
            fc = json.loads(text)
            manifest = fc.get("properties", {}).pop("geolocate_manifest")
            if not fc["properties"]:
                del fc["properties"]
            return "geojson", canonical(fc).decode("utf-8"), manifest
        m = re.search(r'(<Data name="geolocate_manifest">\s*<value>)(.*?)(</value>)', text, re.S)
        if m:
            body = text[: m.start(2)] + KML_PLACEHOLDER + text[m.end(2) :]
            return "kml", body, json.loads(html.unescape(m.group(2)))
    except (ValueError, KeyError, AttributeError) as e:
        if isinstance(e, ProvenanceError):
            raise
        raise ProvenanceError(f"the report's manifest cannot be read ({type(e).__name__}: {e})") from None
    raise ProvenanceError("no geolocate manifest in this file (is it a geolocate report?)")


def body_digest(fmt: str, body: str) -> str:
    """What ``body_sha256`` is for a body (GeoJSON: its RFC 8785 canonical form)."""
    if fmt == "geojson":
        return hashlib.sha256(canonical(json.loads(body))).hexdigest()
    return sha256_text(body)


# -- keys and signatures ------------------------------------------------------------------------------
def new_keypair(prefix: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``PREFIX.key`` (PKCS #8 PEM, mode 0600) and ``PREFIX.pub``
    (SubjectPublicKeyInfo PEM). Refuses to replace existing files.

    Raises:
        ProvenanceError: a file exists already; OutputError: it cannot be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from geolocate.tools.files import check_target, write_output

    key, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for p in (key, pub):
        if p.exists():
            raise ProvenanceError(f"{p} exists already: choose another name (keys are never overwritten)")
        check_target(p)
    sk = Ed25519PrivateKey.generate()
    write_output(
        key,
        sk.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        private=True,
    )
    write_output(
        pub,
        sk.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return key, pub


def load_private_key(path: str | Path):
    """An Ed25519 private key from a PEM file.

    Raises:
        ProvenanceError: missing, unreadable, or not an Ed25519 private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        sk = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ProvenanceError(f"{path}: not a readable PEM private key ({type(e).__name__})") from None
    if not isinstance(sk, Ed25519PrivateKey):
        raise ProvenanceError(f"{path}: not an Ed25519 key (geolocate keys new makes one)")
    return sk


def load_public_key(path: str | Path):
    """An Ed25519 public key from a PEM file.

    Raises:
        ProvenanceError: missing, unreadable, or not an Ed25519 public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        pk = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise ProvenanceError(f"{path}: not a readable PEM public key ({type(e).__name__})") from None
    if not isinstance(pk, Ed25519PublicKey):
        raise ProvenanceError(f"{path}: not an Ed25519 public key")
    return pk


def _raw(pk) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(pk) -> str:
    """``SHA256:`` and the base64 of the SHA-256 of the raw 32-byte public key (as OpenSSH shows)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(_raw(pk)).digest()).decode().rstrip("=")


def sign(manifest: dict[str, Any], sk) -> dict[str, Any]:
    """``manifest`` with an Ed25519 ``signature`` over the canonical JSON of the rest."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    sig = sk.sign(canonical(body))
    pk = sk.public_key()
    return {
        **body,
        "signature": {
            "alg": "Ed25519",
            "public_key": base64.b64encode(_raw(pk)).decode(),
            "fingerprint": fingerprint(pk),
            "value": base64.b64encode(sig).decode(),
        },
    }


# -- verification ---------------------------------------------------------------------------------------
@dataclass
class Verification:
    """What :func:`verify_report` found: ``ok``, the first ``problem`` (naming the entry), what was
    checked, and who signed (``signed_by``: the key fingerprint; ``key_checked``: against a key given
    by the user, not only the one the report carries)."""

    ok: bool
    format: str = ""
    problem: str | None = None
    entries: int = 0
    chain_head: str = ""
    photo_sha256: str = ""
    signed_by: str | None = None
    key_checked: bool = False
    checked: list[str] = field(default_factory=list)


def verify_report(text: str, public_key=None) -> Verification:
    """Check a report from its text alone (see the module docstring). ``public_key``: the signer's
    Ed25519 public key the user trusts; without it a signature is checked against the key the report
    carries (which proves integrity, not who signed).

    Raises:
        ProvenanceError: the text holds no readable manifest.
    """
    fmt, body, m = split(text)
    v = Verification(ok=False, format=fmt)
    if m.get("format") != REPORT_FORMAT:
        v.problem = f"unknown manifest format {m.get('format')!r} (this geolocate reads {REPORT_FORMAT})"
        return v
    entries = m.get("entries") or []
    v.entries, v.chain_head, v.photo_sha256 = (
        len(entries),
        str(m.get("chain_head", "")),
        str((m.get("photo") or {}).get("sha256", "")),
    )
    sig = m.get("signature")
    if public_key is not None and not sig:
        v.problem = "the report is not signed, but a key was given"
        return v
    if sig:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"]))
            value = base64.b64decode(sig["value"])
        except (KeyError, ValueError, TypeError):
            v.problem = "the signature block is damaged"
            return v
        if public_key is not None and _raw(public_key) != _raw(embedded):
            v.problem = f"signed with another key ({fingerprint(embedded)}), not {fingerprint(public_key)}"
            return v
        try:
            embedded.verify(value, canonical({k: x for k, x in m.items() if k != "signature"}))
        except InvalidSignature:
            v.problem = "the signature does not match the manifest (the manifest was changed after signing)"
            return v
        v.signed_by, v.key_checked = fingerprint(embedded), public_key is not None
        v.checked.append("signature")
    if (why := check_chain(entries)) is not None:
        v.problem = why
        return v
    head = entries[-1]["sha256"] if entries else GENESIS
    if m.get("chain_head") != head:
        v.problem = (
            f"the chain head {str(m.get('chain_head'))[:16]}... is not the last entry's hash {head[:16]}..."
        )
        return v
    v.checked.append(f"{len(entries)} chain entries")
    if fmt in ("md", "html"):
        for what, frag in fragments(entries, fmt):
            if frag not in body:
                v.problem = f"{what}: the report shows other text than its recorded content"
                return v
        v.checked.append("every entry's rendering")
    if body_digest(fmt, body) != m.get("body_sha256"):
        v.problem = (
            "the report's text was changed outside the evidence entries (heading, photo, map or notes)"
        )
        return v
    v.checked.append("the report body")
    v.ok = True
    return v
