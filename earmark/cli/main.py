"""The ``earmark`` command: a thin layer over the Python API.

Exit status of ``earmark scan`` (as clamscan): 0 the scan completed and found nothing, 1 it completed
and found catalogue recordings, 2 it could not run (bad arguments, unreadable catalogue, or an
internal error). Unreadable items never change it: they are ``error`` lines in the report. Other
commands exit 0 on success, 1 when some items failed (or a check failed), 2 when they could not run.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from earmark import __version__
from earmark.errors import EarmarkError
from earmark.match.chromaprint import MatchConfig
from earmark.match.envelope import EnvelopeMatchConfig
from earmark.match.landmarks import HoughConfig
from earmark.match.mixture import MixtureMatchConfig

EXIT_OK, EXIT_FOUND, EXIT_FAILED = 0, 1, 2


def _fail(message: str) -> None:
    click.echo(f"earmark: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def handle_errors(fn: Callable) -> Callable:
    """Turn library errors into one clear line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EarmarkError as e:
            _fail(str(e))
        except KeyboardInterrupt:
            click.echo("earmark: interrupted", err=True)
            sys.exit(130)
        except click.ClickException:
            raise
        except Exception as e:  # a bug or an unexpected environment: never exit 1, which means "found"
            logging.getLogger("earmark").debug("internal error", exc_info=True)
            _fail(f"internal error: {type(e).__name__}: {e} (run with -vv for the traceback)")

    return wrapper


class Progress:
    """A bar on a terminal, a plain line every few seconds in logs."""

    def __init__(self, label: str, total: int | None = None, *, every_s: float = 10.0):
        self.label = label
        self.count = 0
        self.every_s = every_s
        self._last = time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="item", file=sys.stderr, dynamic_ncols=True)

    def update(self, postfix: str = "") -> None:
        self.count += 1
        if self._bar is not None:
            self._bar.update(1)
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
        elif time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            click.echo(f"{self.label}: {self.count} items {postfix}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="earmark")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Find a label's recordings inside AI training datasets."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------------------------- catalogue
@cli.group()
def catalogue() -> None:
    """Register recordings and inspect a catalogue."""


_catalogue_opt = click.option(
    "--catalogue", "-c", "cat_path", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Catalogue directory.",
)
_workers_opt = click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores)."
)


@catalogue.command("add")
@_catalogue_opt
@click.option("--metadata", "-m", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="CSV with track_id, isrc, title, artist, rights_holder and path (relative to the CSV).")
@click.argument("audio_dir", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path))
@_workers_opt
@handle_errors
def catalogue_add(cat_path: Path, metadata: Path | None, audio_dir: Path | None, workers: int | None) -> None:
    """Register recordings from a metadata CSV or from a folder of audio (tags and file names).

    The catalogue is created if missing. Audio already registered (same SHA-256) is skipped.
    """
    from earmark.catalogue.metadata import read_csv, specs_from_folder
    from earmark.catalogue.store import Catalogue
    from earmark.parallel import default_workers

    if (metadata is None) == (audio_dir is None):
        raise click.UsageError("give either --metadata CSV or an AUDIO_DIR (one of them)")
    specs = read_csv(metadata) if metadata is not None else specs_from_folder(audio_dir)  # type: ignore[arg-type]
    t0 = time.monotonic()
    with Catalogue.open(cat_path, create=True) as cat:
        bar = Progress("registering", total=len(specs))
        try:
            result = cat.add(specs, workers=workers or default_workers(), progress=lambda o: bar.update())
        finally:
            bar.close()
        for o in result.outcomes:
            if o.status == "error":
                click.echo(f"  error     {o.track_id}: {o.path}: {o.detail}", err=True)
            elif o.status == "duplicate":
                click.echo(f"  duplicate {o.track_id}: {o.detail}", err=True)
        stats = cat.stats()
    click.echo(
        f"added {result.count('added')}, duplicates {result.count('duplicate')}, "
        f"errors {result.count('error')} in {time.monotonic() - t0:.1f} s; catalogue now holds "
        f"{stats['recordings']} recordings ({stats['hours']:.2f} h)"
    )
    sys.exit(EXIT_FOUND if result.count("error") else EXIT_OK)


@catalogue.command("list")
@_catalogue_opt
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def catalogue_list(cat_path: Path, as_json: bool) -> None:
    """List registered recordings."""
    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        recs = cat.recordings()
    for r in recs:
        if as_json:
            click.echo(json.dumps({"track_id": r.track_id, **r.metadata()}, sort_keys=True))
        else:
            click.echo(f"{r.track_id}\t{r.isrc}\t{r.artist}\t{r.title}\t{r.duration_s:.1f}s\t{r.rights_holder}")
    if not as_json:
        click.echo(f"{len(recs)} recordings", err=True)


@catalogue.command("show")
@_catalogue_opt
@click.argument("track_id", required=False)
@handle_errors
def catalogue_show(cat_path: Path, track_id: str | None) -> None:
    """Show one recording (by track_id or ISRC), or the catalogue's summary without TRACK_ID."""
    from dataclasses import asdict

    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        if track_id is None:
            info = {**cat.stats(), "manifest": cat.manifest}
        else:
            info = asdict(cat.get(track_id))
    click.echo(json.dumps(info, indent=1, sort_keys=True))


@catalogue.command("remove")
@_catalogue_opt
@click.argument("track_ids", nargs=-1, required=True)
@handle_errors
def catalogue_remove(cat_path: Path, track_ids: tuple[str, ...]) -> None:
    """Remove recordings (by track_id or ISRC): they are no longer matched."""
    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        for t in track_ids:
            rec = cat.remove(t)
            click.echo(f"removed {rec.track_id} ({rec.artist} - {rec.title})")


# ---------------------------------------------------------------------------------------- scan
def format_summary(s: dict) -> str:
    hours = s["audio_hours"]
    wall = s["wall_seconds"] or 1e-9
    lines = [
        f"items scanned     {s['items']}" + (f"  (skipped {s['skipped_files']} non-media files)"
                                            if s["skipped_files"] else ""),
        f"  matched         {s['matched']}  ({s['matches']} matches of {s['recordings_found']} recordings)",
        f"  no match        {s['no_match']}",
        f"  no signal       {s['no_signal']}  (too short or silent to judge)",
        f"  errors          {s['errors']}  (unreadable; see the report's error lines)",
        f"audio             {hours:.3f} h",
        f"time              {s['wall_seconds']:.1f} s wall, {s['cpu_seconds']:.1f} s CPU, "
        f"{s['workers']} workers",
        f"throughput        {hours * 3600 / wall:.0f}x real time",
    ]
    return "\n".join(lines)


@cli.command()
@click.argument("dataset")
@_catalogue_opt
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Scan folder: report.jsonl, manifest and state go here.")
@_workers_opt
@click.option("--overwrite", is_flag=True, help="Replace an earlier scan in the --out folder.")
@click.option("--resume", is_flag=True,
              help="Carry on an interrupted scan in the --out folder (same catalogue and parameters).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Local worker processes, or a Ray cluster (pip install 'earmark[ray]').")
@click.option("--address", default=None, help="Ray cluster address (ray://host:10001); local Ray without it.")
@click.option("--audio-column", default="audio", show_default=True,
              help="Column holding the audio in Parquet / Arrow sources.")
@click.option("--all-files", is_flag=True, help="Try every file, not only media by extension.")
@click.option("--max-fmp", type=click.FloatRange(min=0, min_open=True, max=1), default=None,
              help="Report matches whose false-match probability is at most this "
              f"(default {MatchConfig().max_fmp:g}).")
@click.option("--landmark-max-fmp", type=click.FloatRange(min=0, min_open=True, max=1), default=None,
              help="Report matches that only the landmark family finds (pitch, tempo or speed "
              "changes, heavy noise) when their false-match probability is at most this (default "
              "1e-80: the preset with no false positives on hard negatives; see docs/matching.md).")
@click.option("--landmark-copy-fmp", type=click.FloatRange(min=0, min_open=True, max=1), default=None,
              help="...or at most this when the alignment keeps the recording's timing (untransformed "
              "or pitch-shifted) and covers at least half the item "
              f"(default {HoughConfig().copy_fmp:g}).")
@click.option("--envelope-max-fmp", type=click.FloatRange(min=0, min_open=True, max=1), default=None,
              help="Report a whole item that neither family places, but whose spectral envelope "
              "follows a recording's (a copy in a reverberant room), when its false-match "
              f"probability is at most this (default {EnvelopeMatchConfig().max_fmp:g}).")
@click.option("--mixture-max-fmp", type=click.FloatRange(min=0, min_open=True, max=1), default=None,
              help="Report a whole item that holds a recording under other sound (music, speech), "
              "checked peak by peak, when its false-match probability is at most this (default "
              f"{MixtureMatchConfig().max_fmp:g}).")
@click.option("--mixture-max-unmasked", type=click.FloatRange(min=0, max=1), default=None,
              help="...and at most this share of the recording's loud peaks is missing from the item "
              "where nothing could hide it (default "
              f"{MixtureMatchConfig().max_unmasked:g}; the test that keeps related recordings out).")
@handle_errors
def scan(dataset: str, cat_path: Path, out_dir: Path, workers: int | None, overwrite: bool, resume: bool,
         engine: str, address: str | None, audio_column: str, all_files: bool, max_fmp: float | None,
         landmark_max_fmp: float | None, landmark_copy_fmp: float | None,
         envelope_max_fmp: float | None, mixture_max_fmp: float | None,
         mixture_max_unmasked: float | None) -> None:
    """Scan DATASET for catalogue recordings.

    DATASET is a folder (recursive), an audio file, a zip, a tar / WebDataset shard or a brace
    pattern of shards (shard-{000000..000099}.tar), Parquet files or a datasets.save_to_disk folder
    (audio column: --audio-column), locally or as an s3://, gs:// or https:// URL. What a folder holds
    is recognised from its files.

    Writes OUT/report.jsonl with one line per item. Exit status: 0 nothing found, 1 catalogue
    recordings found, 2 the scan could not run.
    """
    from dataclasses import replace

    from earmark.scan.run import scan as run_scan
    from earmark.scan.worker import ScanSettings
    from earmark.sources import Limits

    settings = ScanSettings(limits=Limits(audio_column=audio_column))
    overrides = {  # (part of the settings, field): the option's value, None when not given
        ("match", "max_fmp"): max_fmp,
        ("landmarks", "max_fmp"): landmark_max_fmp,
        ("landmarks", "copy_fmp"): landmark_copy_fmp,
        ("envelope", "max_fmp"): envelope_max_fmp,
        ("mixture", "max_fmp"): mixture_max_fmp,
        ("mixture", "max_unmasked"): mixture_max_unmasked,
    }
    for (part, name), value in overrides.items():
        if value is not None:
            settings = replace(settings, **{part: replace(getattr(settings, part), **{name: value})})
    bar = Progress("scanning")
    found = [0]

    def on_result(r) -> None:
        found[0] += r.status == "match"
        bar.update(f"matched {found[0]}")

    try:
        summary = run_scan(dataset, cat_path, out_dir, settings=settings, workers=workers,
                           overwrite=overwrite, resume=resume, all_files=all_files, argv=sys.argv,
                           engine=engine, address=address,
                           on_result=on_result)
    finally:
        bar.close()
    click.echo(format_summary(summary.to_dict()))
    if summary.resumed_items:
        click.echo(f"resumed           {summary.resumed_items} items were already done")
    click.echo(f"report            {out_dir / 'report.jsonl'}")
    sys.exit(EXIT_FOUND if summary.matched else EXIT_OK)


@catalogue.group("licence")
def licence() -> None:
    """Record who may use which recordings in which datasets; covered findings are not flagged."""


@licence.command("add")
@_catalogue_opt
@click.option("--licensee", required=True, help="Who holds the licence.")
@click.option("--dataset", "dataset_pattern", required=True,
              help="Dataset name or shell pattern the licence covers (matched against the scanned source "
                   "or --dataset-name of the report).")
@click.option("--track", "tracks", multiple=True, help="A covered recording (repeatable; default: all).")
@click.option("--from", "start", default="", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", default="", help="Last day, YYYY-MM-DD.")
@click.option("--territory", default="", help="Territory (informational).")
@click.option("--note", default="", help="Free text (contract reference).")
@handle_errors
def licence_add(cat_path: Path, licensee: str, dataset_pattern: str, tracks: tuple[str, ...], start: str,
                end: str, territory: str, note: str) -> None:
    """Add a licence to the catalogue."""
    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        lic = cat.add_licence(licensee=licensee, dataset_pattern=dataset_pattern, track_ids=tracks,
                              start=start, end=end, territory=territory, note=note)
    what = ", ".join(lic.track_ids) or "every recording"
    click.echo(f"licence {lic.licence_id}: {lic.licensee} may use {what} "
               f"in datasets matching {lic.dataset_pattern!r}")


@licence.command("list")
@_catalogue_opt
@handle_errors
def licence_list(cat_path: Path) -> None:
    """List licences in force."""
    from dataclasses import asdict

    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        for lic in cat.licences():
            click.echo(json.dumps(asdict(lic), sort_keys=True))


@licence.command("revoke")
@_catalogue_opt
@click.argument("licence_id", type=int)
@handle_errors
def licence_revoke(cat_path: Path, licence_id: int) -> None:
    """Revoke a licence (it stays on record)."""
    from earmark.catalogue.store import Catalogue

    with Catalogue.open(cat_path) as cat:
        cat.revoke_licence(licence_id)
    click.echo(f"revoked licence {licence_id}")


# ---------------------------------------------------------------------------------------- reports
@cli.group()
def report() -> None:
    """Build and verify report bundles for legal teams."""


@report.command("build")
@click.argument("scan_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle folder to write (must not exist or be empty).")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Ed25519 private key to sign the bundle's manifest with (earmark keys generate).")
@click.option("--catalogue", "-c", "cat_path", type=click.Path(file_okay=False, path_type=Path),
              help="Catalogue (default: the one the scan used).")
@click.option("--dataset-name",
              help="Dataset name licences are matched against (default: the scanned source).")
@click.option("--internal", is_flag=True,
              help="Internal edition: adds spectrograms of catalogue audio. Never share it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle folder.")
@handle_errors
def report_build(scan_dir: Path, out_dir: Path, sign_key: Path | None, cat_path: Path | None,
                 dataset_name: str | None, internal: bool, overwrite: bool) -> None:
    """Write the report bundle of a completed scan: findings, exports, HTML, methods, hashes, signature."""
    from earmark.report.build import build_bundle

    f = build_bundle(scan_dir, out_dir, catalogue=cat_path, dataset_name=dataset_name, sign_key=sign_key,
                     internal=internal, overwrite=overwrite)
    t = f.totals
    click.echo(f"{t['recordings_found']} of {t['recordings_registered']} registered recordings found "
               f"({t['recordings_unlicensed']} unlicensed) in {t['items_matched']} of "
               f"{t['items_scanned']} items")
    click.echo(f"bundle            {out_dir}" + ("  (signed)" if sign_key else "  (unsigned)"))
    click.echo(f"report            {out_dir / 'report' / 'report.html'}")


@report.command("verify")
@click.argument("bundle", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--pubkey", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The signer's public key, obtained from the signer (not from the bundle).")
@handle_errors
def report_verify(bundle: Path, pubkey: Path | None) -> None:
    """Check every file of a bundle against its manifest and, with --pubkey, the signature.

    Exit status: 0 intact (and signed by that key), 1 a file changed, is missing or was added, or the
    signature does not match, 2 the bundle cannot be read.
    """
    from earmark.report.bundle import verify_bundle

    result = verify_bundle(bundle, pubkey_path=pubkey)
    for p in result.problems:
        click.echo(f"FAIL  {p}", err=True)
    for n in getattr(result, "notes", ()):
        click.echo(f"note  {n}", err=True)
    if not result.ok:
        click.echo(f"earmark: bundle {bundle} does NOT verify ({len(result.problems)} problems)", err=True)
        sys.exit(EXIT_FOUND)
    signed = "signature verified" if result.signature_verified else "signature NOT checked (no --pubkey)"
    click.echo(f"OK    {result.files_checked} files intact; {signed}")


@cli.group()
def keys() -> None:
    """Signing keys for report bundles."""


@keys.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def keys_generate(path: Path) -> None:
    """Write a new Ed25519 key pair: PATH (private, mode 0600) and PATH.pub (public, to hand out)."""
    from earmark.report.keys import generate_keypair, key_fingerprint, load_public_key

    priv, pub = generate_keypair(path)
    click.echo(f"private key       {priv}  (keep it secret)")
    click.echo(f"public key        {pub}")
    click.echo(f"fingerprint       {key_fingerprint(load_public_key(pub))}")


@cli.command("verify-match")
@click.argument("scan_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("item")
@click.option("--track", "track_id", help="Check only the match with this recording.")
@click.option("--catalogue", "-c", "cat_path", type=click.Path(file_okay=False, path_type=Path),
              help="Catalogue (default: the one the scan used).")
@click.option("--source", help="Where the dataset is now (default: where it was scanned).")
@handle_errors
def verify_match_cmd(scan_dir: Path, item: str, track_id: str | None, cat_path: Path | None,
                     source: str | None) -> None:
    """Re-check the matches of ITEM: its SHA-256, a fresh decode, and an exhaustive alignment.

    Exit status: 0 every match reproduced, 1 not reproduced (or the item changed), 2 cannot run.
    """
    from earmark.scan.recheck import verify_match

    res = verify_match(scan_dir, item, track_id=track_id, catalogue=cat_path, source=source)
    click.echo(f"item              {item}")
    click.echo(f"sha256            {'matches the scan' if res.sha256_ok else 'DIFFERS from the scan'}")
    for c in res.checks:
        r = c.reproduced or {}
        q, ref = c.reported["query_start"], c.reported["ref_start"]
        claim = "not reported" if q is None else f"reported item {q:.2f} s = recording {ref:.2f} s"
        click.echo(f"{'OK  ' if c.ok else 'FAIL'}  {c.track_id}: {claim}; re-check "
                   + (f"{r.get('query_start', 0):.2f} s = {r.get('ref_start', 0):.2f} s, "
                      f"score {r.get('score', 0):.1f}, {_evidence(r)}" if r else "nothing")
                   + ("" if c.ok else f" ({c.detail})"))
    for n in res.notes:
        click.echo(f"note  {n}")
    sys.exit(EXIT_OK if res.ok else EXIT_FOUND)


def _evidence(m: dict) -> str:
    """A match's evidence in a few words: Chromaprint's bit error rate, landmark anchors, the envelope
    correlation, the peak check's counts (a mixture or an excerpt)."""
    parts = []
    if m.get("ber") is not None:
        parts.append(f"BER {m['ber']:.3f}")
    if m.get("anchors"):
        parts.append(f"{m['anchors']} landmark anchors, time factor {m.get('time_factor', 1.0):.3f}, "
                     f"pitch {m.get('pitch_st', 0.0):+.2f} st")
    if m.get("envelope_r") is not None:
        parts.append(f"envelope correlation {m['envelope_r']:.3f}")
    if m.get("unmasked") is not None:
        parts.append(f"{m.get('n_distinct', 0)} of {m.get('n_items', 0)} recording peaks found, "
                     f"{100 * m['unmasked']:.1f} % of the loud ones missing unmasked")
    if m.get("excerpt_fmp") is not None:
        parts.append(f"excerpt check FMP {m['excerpt_fmp']:.2g}")
    return ", ".join(parts) or "no evidence"


# ---------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-out"), show_default=True, help="Where the demo writes its files.")
@_workers_opt
@handle_errors
def demo(out_dir: Path, workers: int | None) -> None:
    """Generate a synthetic catalogue and dataset, register, scan, and print what was found."""
    from earmark.demo import run_demo

    result = run_demo(out_dir, workers=workers, echo=click.echo)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def main() -> None:
    cli(prog_name="earmark")


if __name__ == "__main__":
    main()
