"""Build a report bundle from a completed scan: the files a legal team hands over, hashed and signed.

Layout::

    BUNDLE/
      manifest.json, manifest.json.sig, SHA256SUMS   integrity (see earmark.report.bundle)
      report/summary.json      totals, per rights holder, scope
      report/findings.jsonl    one line per recording found (the master copy; findings.csv renders it)
      report/matches.jsonl     one line per match, scorer-compatible (matches.csv renders it)
      report/items.jsonl       every scanned item: SHA-256, status, reason
      report/report.html       the readable report (self-contained)
      methods/methods.json     thresholds, catalogue size, validation figures, limitations
      methods/scan-manifest.json  the scan's own manifest: command line, versions, times, digests
      methods/catalogue.json   the registered recordings (metadata and SHA-256 at registration; no audio)
      VERIFY.md                how to check the bundle
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from earmark import __version__
from earmark.catalogue.store import Catalogue
from earmark.errors import EarmarkError
from earmark.fileio import atomic_write_text, utc_now
from earmark.report.bundle import sign_bundle, write_manifest
from earmark.report.export import (
    FINDING_COLUMNS,
    MATCH_COLUMNS,
    finding_rows,
    item_rows,
    jsonl,
    match_rows,
    to_csv,
)
from earmark.report.findings import Findings, build_findings
from earmark.report.methods import methods_section

VERIFY_MD = """# Verifying this bundle

1. Obtain the signer's public key from the signer directly (never from inside this bundle) and compare
   its fingerprint with the one below.
2. Run `earmark report verify BUNDLE --pubkey signer.pub`: it recomputes the SHA-256 of every file,
   fails on any changed, missing or added file, and checks the Ed25519 signature over manifest.json.
3. Without earmark: `sha256sum -c SHA256SUMS` inside the bundle checks the files; the signature file
   `manifest.json.sig` is the base64 of a raw Ed25519 signature over the bytes of manifest.json.
4. To re-check one finding against the dataset and the catalogue:
   `earmark verify-match SCAN_DIR ITEM` (the item identifiers are in report/matches.jsonl).

Signer key fingerprint (SHA-256 of the raw public key): {fingerprint}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def load_scan(scan_dir: str | os.PathLike) -> tuple[dict, list[dict]]:
    scan_dir = Path(scan_dir)
    try:
        manifest = json.loads((scan_dir / "manifest.json").read_text())
        lines = (scan_dir / "report.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, json.JSONDecodeError) as e:
        raise EarmarkError(f"{scan_dir}: not a completed scan ({e})") from e
    if manifest.get("status") != "complete":
        raise EarmarkError(f"{scan_dir}: the scan has not completed (resume it first)")
    return manifest, [json.loads(x) for x in lines if x.strip()]


def build_bundle(
    scan_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    catalogue: str | os.PathLike | None = None,
    dataset_name: str | None = None,
    sign_key: str | os.PathLike | None = None,
    internal: bool = False,
    overwrite: bool = False,
) -> Findings:
    """Write the report bundle of a completed scan to ``out`` and return its findings.

    Parameters
    ----------
    dataset_name : str, optional
        Name licences are matched against (default: the scanned source).
    sign_key : path, optional
        Ed25519 private key to sign the manifest with.
    internal : bool
        Add spectrograms of the catalogue's audio to the HTML (an internal edition: spectrograms are
        invertible, so this edition must not be shared).
    """
    manifest, records = load_scan(scan_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise EarmarkError(f"{out}: exists and is not empty")
        shutil.rmtree(out)
    with Catalogue.open(catalogue or manifest["catalogue"]) as cat:
        recordings = cat.recordings()
        licences = cat.licences()
        stats = cat.stats()
    catalogue_rows = [{"track_id": r.track_id, **r.metadata(), "registered_at": r.added_at}
                      for r in recordings]
    dataset = dataset_name or manifest["source"]
    date = (manifest.get("finished_at") or utc_now())[:10]
    findings = build_findings(records, catalogue_rows, licences=licences, dataset=dataset, date=date)
    methods = methods_section(manifest, {k: stats[k] for k in ("recordings", "hours", "digest", "params_id")})
    summary = {
        "schema": "earmark.summary/1",
        "dataset": dataset,
        "scan_date": date,
        "totals": findings.totals,
        "rights_holders": [asdict(h) for h in findings.holders],
        "licences": [asdict(lic) for lic in licences],
        "scope": "Presence of registered recordings in the scanned dataset snapshot; not proof of training.",
        "earmark_version": __version__,
        "edition": "internal" if internal else "shareable",
    }
    rep = out / "report"
    _write(rep / "summary.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    _write(rep / "findings.jsonl", jsonl(f.to_dict() for f in findings.findings))
    matches = match_rows(records)
    _write(rep / "matches.jsonl", jsonl(matches))
    _write(rep / "items.jsonl", jsonl(item_rows(records)))
    _write(rep / "findings.csv", to_csv(finding_rows(findings), FINDING_COLUMNS))
    _write(rep / "matches.csv", to_csv(matches, MATCH_COLUMNS))
    audio = None
    if internal:
        audio = {r.track_id: r.source_path for r in recordings if Path(r.source_path).is_file()}
    from earmark.report.html import render_html

    html = render_html(findings=findings, records=records, manifest=manifest, methods=methods,
                       internal_audio=audio)
    _write(rep / "report.html", html)
    meth = out / "methods"
    _write(meth / "methods.json", json.dumps(methods, indent=1, sort_keys=True) + "\n")
    _write(meth / "scan-manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    _write(meth / "catalogue.json", json.dumps({"stats": stats, "recordings": catalogue_rows},
                                               indent=1, sort_keys=True) + "\n")
    fingerprint = "(unsigned)"
    if sign_key is not None:
        from earmark.report.keys import key_fingerprint, load_private_key

        fingerprint = key_fingerprint(load_private_key(sign_key).public_key())
    _write(out / "VERIFY.md", VERIFY_MD.format(fingerprint=fingerprint))
    write_manifest(out, meta={"created_at": utc_now(), "earmark_version": __version__,
                              "scan_started_at": manifest.get("started_at"),
                              "catalogue_digest": manifest.get("catalogue_digest"),
                              "edition": summary["edition"], "signer_key_fingerprint": fingerprint})
    if sign_key is not None:
        sign_bundle(out, sign_key)
    return findings
