"""Evidence bundles: a manifest of every file's SHA-256, one Ed25519 signature over it, and verification.

A bundle is a directory. Its top level holds three files that describe the rest::

    manifest.json      canonical JSON: format, format_version, files [{path, sha256, size}], metadata
    manifest.json.sig  base64 of the raw Ed25519 signature over the exact bytes of manifest.json
    SHA256SUMS         the manifest's file list in ``sha256sum -c`` form, derived from manifest.json

The manifest lists every other regular file (POSIX paths relative to the bundle, sorted). A bundle holds
only regular files and directories: symlinks and special files are refused. Verification recomputes
every listed file's digest, reports missing and unlisted files, checks that SHA256SUMS was derived from
the manifest and, given a public key obtained out of band, checks the signature. A key found inside the
bundle is never used.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from earmark.errors import EarmarkError, ParameterError
from earmark.fileio import atomic_write_bytes, sha256_file
from earmark.report.keys import key_fingerprint, load_private_key, load_public_key

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MANIFEST",
    "SHA256SUMS",
    "SIGNATURE",
    "BundleError",
    "Problem",
    "VerificationError",
    "VerifyResult",
    "check_bundle",
    "sign_bundle",
    "verify_bundle",
    "write_manifest",
]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "earmark-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SHA256SUMS = "SHA256SUMS"
#: Top-level files the manifest describes or is described by, and so does not list.
DETACHED = frozenset({MANIFEST, SIGNATURE, SHA256SUMS})
#: Characters a path in a bundle must not hold: they would need escaping in SHA256SUMS.
_BAD_NAME_CHARS = frozenset("\\\n\r")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ED25519_SIGNATURE_BYTES = 64

Level = Literal["signature", "integrity"]


class BundleError(EarmarkError):
    """A bundle cannot be written, signed or verified. ``code`` is a short machine-readable kind."""

    code: str = "bundle"


@dataclass(frozen=True)
class Problem:
    """One verification failure.

    Attributes
    ----------
    path : str
        The offending file, a POSIX path relative to the bundle.
    reason : str
        What is wrong with it, e.g. ``"missing"``.
    level : {"signature", "integrity"}
        The verification level that failed (the CLI maps it to an exit code).
    """

    path: str
    reason: str
    level: Level = "integrity"

    def __str__(self) -> str:
        """``path: reason``, as printed for people."""
        return f"{self.path}: {self.reason}"


class VerificationError(BundleError):
    """A bundle failed verification.

    The message lists every problem, one a line, the first naming the first offending file. ``problems``
    holds them all, ``path`` the first offending file and ``code`` the level that failed first
    (``"signature"`` or ``"integrity"``).
    """

    def __init__(self, problems: Sequence[Problem]):
        if not problems:
            raise ValueError("VerificationError needs at least one problem")
        self.problems = tuple(problems)
        self.path = self.problems[0].path
        self.code = self.problems[0].level
        super().__init__("\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_bundle` found.

    Attributes
    ----------
    files_checked : int
        Listed files whose SHA-256 and size were recomputed.
    signer_fingerprint : str or None
        Fingerprint of the public key the signature verified against; None if no key was given or the
        signature did not verify.
    problems : tuple of Problem
        Every failure, signature problems first, then by path.
    notes : tuple of str
        What was not checked, e.g. the signature when no public key was given.
    """

    files_checked: int
    signer_fingerprint: str | None
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True if every check that ran passed. See :attr:`signature_verified` for the signature."""
        return not self.problems

    @property
    def signature_verified(self) -> bool:
        """True if the signature was checked against a given public key and matched."""
        return self.signer_fingerprint is not None


# ------------------------------------------------------------------------------- writing
def write_manifest(bundle_dir: str | os.PathLike[str], *, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` and ``SHA256SUMS`` for every file in a bundle directory.

    Both files are written atomically. An existing ``manifest.json.sig`` is left alone and no longer
    matches: sign again with :func:`sign_bundle`.

    Parameters
    ----------
    bundle_dir : str or os.PathLike
        The bundle directory.
    meta : Mapping
        Further top-level manifest fields (e.g. ``run_id``, ``created_at``); JSON-serialisable, without
        the reserved keys ``format``, ``format_version`` and ``files``.

    Returns
    -------
    dict
        The manifest as written: ``{"format", "format_version", "files": [{"path", "sha256", "size"}],
        **meta}``, ``size`` in bytes.

    Raises
    ------
    BundleError
        If the directory holds a symlink, a special file or a file name that cannot be listed, or a file
        cannot be read or written.
    ParameterError
        If ``meta`` uses a reserved key or is not JSON-serialisable.
    """
    root = _bundle_root(bundle_dir)
    reserved = sorted({"format", "format_version", "files"} & set(meta))
    if reserved:
        raise ParameterError(f"meta must not set the reserved manifest keys {reserved}")
    files, refused = _scan(root)
    if refused:
        raise BundleError("refusing to list the bundle:\n" + "\n".join(map(str, refused)))
    entries = []
    for rel, path in files.items():
        if rel not in DETACHED:
            sha256, size = _digest(path)
            entries.append({"path": rel, "sha256": sha256, "size": size})
    manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "files": entries, **meta}
    try:
        data = _canonical_json(manifest)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"meta is not JSON-serialisable: {e}") from e
    _atomic_write(root / MANIFEST, data)
    _atomic_write(root / SHA256SUMS, _sha256sums(entries))
    log.info("wrote %s listing %d files", root / MANIFEST, len(entries))
    return json.loads(data)


def sign_bundle(bundle_dir: str | os.PathLike[str], private_key_path: str | os.PathLike[str]) -> str:
    """Sign a bundle's ``manifest.json``, writing ``manifest.json.sig`` (replacing any earlier one).

    The bundle is verified first (without the signature): a manifest that does not describe the files
    beside it is not signed.

    Parameters
    ----------
    bundle_dir : str or os.PathLike
        The bundle directory, with a manifest from :func:`write_manifest`.
    private_key_path : str or os.PathLike
        The signer's Ed25519 private key (see :func:`earmark.report.keys.generate_keypair`).

    Returns
    -------
    str
        Fingerprint of the signer's public key.

    Raises
    ------
    KeyFileError
        If the private key cannot be loaded.
    VerificationError
        If the bundle does not match its manifest.
    """
    root = _bundle_root(bundle_dir)
    key = load_private_key(private_key_path)
    result = verify_bundle(root)
    if not result.ok:
        raise VerificationError(result.problems)
    signature = key.sign((root / MANIFEST).read_bytes())
    _atomic_write(root / SIGNATURE, base64.b64encode(signature) + b"\n")
    fingerprint = key_fingerprint(key.public_key())
    log.info("signed %s with key %s", root / MANIFEST, fingerprint)
    return fingerprint


# ------------------------------------------------------------------------------- verifying
def verify_bundle(
    bundle_dir: str | os.PathLike[str], *, pubkey_path: str | os.PathLike[str] | None = None
) -> VerifyResult:
    """Check a bundle's signature (given a public key) and the integrity of every file in it.

    Parameters
    ----------
    bundle_dir : str or os.PathLike
        The bundle directory.
    pubkey_path : str or os.PathLike, optional
        The signer's public key, obtained out of band. Without it the signature is not checked (a key
        shipped inside the bundle proves nothing), and ``notes`` says so.

    Returns
    -------
    VerifyResult
        Every failure is a :class:`Problem` naming the file: a damaged bundle does not raise.

    Raises
    ------
    BundleError
        If ``bundle_dir`` is not a directory, or a file in it cannot be read (e.g. permissions).
    KeyFileError
        If the public key cannot be loaded.
    """
    root = _bundle_root(bundle_dir)
    files, problems = _scan(root)
    refused = {p.path for p in problems}
    manifest_bytes = _read_detached(files, MANIFEST)

    notes: list[str] = []
    fingerprint = None
    if pubkey_path is None:
        notes.append(f"{SIGNATURE}: signature not checked (no public key given)")
    else:
        public_key = load_public_key(pubkey_path)
        signature_problems = _check_signature(files, manifest_bytes, public_key)
        problems += signature_problems
        if not signature_problems:
            fingerprint = key_fingerprint(public_key)
        if Path(pubkey_path).resolve().is_relative_to(root.resolve()):
            notes.append("the public key was taken from inside the bundle: compare its fingerprint with "
                         "one obtained out of band")

    files_checked = 0
    if manifest_bytes is None:
        if MANIFEST not in refused:
            problems.append(Problem(MANIFEST, "missing"))
    else:
        entries, manifest_problems = _parse_manifest(manifest_bytes)
        problems += manifest_problems
        if entries is not None:
            files_checked, file_problems = _check_files(files, refused, entries)
            problems += file_problems
    problems.sort(key=lambda p: (p.level != "signature", p.path))
    return VerifyResult(files_checked, fingerprint, tuple(problems), tuple(notes))


def check_bundle(
    bundle_dir: str | os.PathLike[str], *, pubkey_path: str | os.PathLike[str] | None = None
) -> VerifyResult:
    """Like :func:`verify_bundle`, but raise if anything failed.

    Returns
    -------
    VerifyResult
        The result, whose ``ok`` is True.

    Raises
    ------
    VerificationError
        Listing every problem, the first line naming the first offending file.
    """
    result = verify_bundle(bundle_dir, pubkey_path=pubkey_path)
    if not result.ok:
        raise VerificationError(result.problems)
    return result


def _check_signature(
    files: Mapping[str, Path], manifest_bytes: bytes | None, public_key: Ed25519PublicKey
) -> list[Problem]:
    raw = _read_detached(files, SIGNATURE)
    if raw is None:
        return [Problem(SIGNATURE, "missing: the bundle is not signed", "signature")]
    if manifest_bytes is None:
        return [Problem(SIGNATURE, f"cannot be checked: {MANIFEST} is missing", "signature")]
    try:
        signature = base64.b64decode(raw.removesuffix(b"\n"), validate=True)
    except binascii.Error:
        signature = b""
    # Only the exact form sign_bundle writes is accepted, so that no byte of the file goes unchecked.
    if len(signature) != _ED25519_SIGNATURE_BYTES or base64.b64encode(signature) + b"\n" != raw:
        return [Problem(SIGNATURE, "not an Ed25519 signature (one line of base64, 64 bytes)", "signature")]
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        return [Problem(SIGNATURE, f"signature does not match the given public key: {MANIFEST} or its "
                                   "signature was altered, or another key signed it", "signature")]
    return []


def _parse_manifest(data: bytes) -> tuple[list[dict[str, Any]] | None, list[Problem]]:
    """Return the manifest's file entries, or None and the problems that make it unusable."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as e:
        return None, [Problem(MANIFEST, f"not valid JSON ({e})")]
    if not isinstance(doc, dict):
        return None, [Problem(MANIFEST, "not a JSON object")]
    if doc.get("format") != BUNDLE_FORMAT:
        return None, [Problem(MANIFEST, f"format is {doc.get('format')!r}, not {BUNDLE_FORMAT!r}")]
    if doc.get("format_version") != BUNDLE_VERSION:
        return None, [Problem(MANIFEST, f"format_version {doc.get('format_version')!r} is not supported "
                                        f"(this earmark reads {BUNDLE_VERSION})")]
    entries = doc.get("files")
    if not isinstance(entries, list):
        return None, [Problem(MANIFEST, "'files' is not a list")]
    problems = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)
            and _SHA256_HEX.fullmatch(entry["sha256"])
            and type(entry.get("size")) is int
            and entry["size"] >= 0
        ):
            problems.append(Problem(MANIFEST, f"files[{i}] is not {{path, sha256 (64 hex digits), size}}"))
        elif _unsafe_path(entry["path"]):
            problems.append(Problem(MANIFEST, f"files[{i}] lists {entry['path']!r}, not a path a bundle "
                                              "may list"))
        elif entry["path"] in seen:
            problems.append(Problem(MANIFEST, f"files[{i}] lists {entry['path']!r} a second time"))
        else:
            seen.add(entry["path"])
    return (None, problems) if problems else (entries, [])


def _check_files(
    files: Mapping[str, Path], refused: set[str], entries: list[dict[str, Any]]
) -> tuple[int, list[Problem]]:
    """Compare the files found with the manifest's entries: (files hashed, problems)."""
    problems = []
    checked = 0
    listed = set()
    for entry in entries:
        rel = entry["path"]
        listed.add(rel)
        if rel not in files:
            if rel not in refused:  # a refused symlink or special file is already reported
                problems.append(Problem(rel, "missing"))
            continue
        sha256, size = _digest(files[rel])
        checked += 1
        if (sha256, size) != (entry["sha256"], entry["size"]):
            problems.append(Problem(rel, f"changed (sha256 {sha256}, {size} bytes; the manifest lists "
                                         f"sha256 {entry['sha256']}, {entry['size']} bytes)"))
    for rel in files:
        if rel not in listed and rel not in DETACHED:
            problems.append(Problem(rel, "not listed in the manifest (added)"))
    sums = _read_detached(files, SHA256SUMS)
    if sums is None:
        if SHA256SUMS not in refused:
            problems.append(Problem(SHA256SUMS, "missing"))
    elif sums != _sha256sums(entries):
        problems.append(Problem(SHA256SUMS, f"does not match {MANIFEST}"))
    return checked, problems


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a repeated key: the signed bytes must mean one thing.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a key is repeated in one object")
    return doc


# ------------------------------------------------------------------------------- files
def _bundle_root(bundle_dir: str | os.PathLike[str]) -> Path:
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"{root}: not a directory")
    return root


def _unsafe_path(rel: str) -> bool:
    """Tell whether ``rel`` is not a plain relative POSIX path to a file a manifest may list."""
    parts = rel.split("/")
    return (
        rel in DETACHED
        or any(part in ("", ".", "..") for part in parts)
        or any(c in _BAD_NAME_CHARS for c in rel)
    )


def _scan(root: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Every regular file under ``root`` by sorted relative path, without following symlinks.

    Symlinks, special files and names that cannot be listed are returned as problems instead.
    """
    files: dict[str, Path] = {}
    refused: list[Problem] = []
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as e:
            raise BundleError(f"{directory}: cannot read: {e.strerror}") from e
        for entry in entries:
            rel = prefix + entry.name
            if not _listable_name(entry.name):
                shown = rel.encode("utf-8", "backslashreplace").decode("utf-8")
                refused.append(Problem(shown, "a name with a backslash, a line break or invalid UTF-8 "
                                              "is not allowed in a bundle"))
            elif entry.is_symlink():
                refused.append(Problem(rel, "symlink (not allowed in a bundle)"))
            elif entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                files[rel] = Path(entry.path)
            else:
                refused.append(Problem(rel, "not a regular file (not allowed in a bundle)"))
    return dict(sorted(files.items())), sorted(refused, key=lambda p: p.path)


def _listable_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by os as lone surrogates
        return False
    return not any(c in _BAD_NAME_CHARS for c in name)


def _read_detached(files: Mapping[str, Path], name: str) -> bytes | None:
    """Bytes of a top-level detached file, or None if it is not a regular file of the bundle."""
    if name not in files:
        return None
    try:
        return files[name].read_bytes()
    except OSError as e:
        raise BundleError(f"{files[name]}: cannot read: {e.strerror}") from e


def _digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file."""
    try:
        return sha256_file(path)
    except OSError as e:
        raise BundleError(f"{path}: cannot read: {e.strerror}") from e


def _canonical_json(doc: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII escapes), no NaN, one trailing newline."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _sha256sums(entries: Sequence[Mapping[str, Any]]) -> bytes:
    """``sha256sum -c`` input for the entries: ``<hex>  <path>`` lines, sorted by path."""
    lines = [f"{e['sha256']}  {e['path']}\n" for e in sorted(entries, key=lambda e: e["path"])]
    return "".join(lines).encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (see :func:`earmark.fileio.atomic_write_bytes`)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise BundleError(f"{path}: cannot write: {e.strerror}") from e
