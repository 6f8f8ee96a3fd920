"""earmark.report.bundle and earmark.report.keys: manifest, signature, and tamper detection."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from earmark.errors import ParameterError
from earmark.report.bundle import (
    MANIFEST,
    SHA256SUMS,
    SIGNATURE,
    BundleError,
    VerificationError,
    check_bundle,
    sign_bundle,
    verify_bundle,
    write_manifest,
)
from earmark.report.keys import (
    KeyFileError,
    generate_keypair,
    key_fingerprint,
    load_private_key,
    load_public_key,
)

CONTENT = {
    "report/report.html": b"<!doctype html><h1>Findings</h1>\n",
    "report/findings.jsonl": b'{"track_id":"T1","n_items":2}\n{"track_id":"T2","n_items":1}\n',
    "methods/config.json": b'{"params_id":"cp-1a2b"}\n',
}
META = {"run_id": "run-0001", "case": "EMK-Ørsted-v-Example"}
EVERY_FILE = sorted([*CONTENT, MANIFEST, SIGNATURE, SHA256SUMS])


def named(name: str, text: str) -> bool:
    """Tell whether ``text`` names the file ``name`` as a whole path (not inside "manifest.json.sig")."""
    return re.search(rf"(?<![\w/.]){re.escape(name)}(?![\w/]|\.\w)", text) is not None


def flip_byte(path: Path, offset: int) -> bytes:
    """Flip the lowest bit of one byte of a file; return the original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def seeded_keypair(path: Path, seed: str) -> tuple[Path, Path]:
    """Write a key pair made from a seed, so that (deterministic Ed25519) signatures repeat every run."""
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    public = path.with_name(path.name + ".pub")
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))
    return path, public


@pytest.fixture
def keypair(tmp_path) -> tuple[Path, Path]:
    return seeded_keypair(tmp_path / "keys" / "signer", "earmark test signer")


@pytest.fixture
def bundle(tmp_path, keypair) -> Path:
    root = tmp_path / "EMK-case-run"
    for rel, data in CONTENT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_manifest(root, meta=META)
    sign_bundle(root, keypair[0])
    return root


def problems_of(root: Path, pubkey: Path | None) -> list[str]:
    return [str(p) for p in verify_bundle(root, pubkey_path=pubkey).problems]


# ------------------------------------------------------------------------------- writing
def test_manifest_lists_every_file_with_digest_and_size(bundle):
    manifest = json.loads((bundle / MANIFEST).read_bytes())
    assert manifest == {
        "format": "earmark-bundle",
        "format_version": 1,
        "files": [
            {"path": rel, "sha256": hashlib.sha256(CONTENT[rel]).hexdigest(), "size": len(CONTENT[rel])}
            for rel in sorted(CONTENT)
        ],
        **META,
    }


def test_manifest_is_canonical_json_and_deterministic(bundle):
    data = (bundle / MANIFEST).read_bytes()
    doc = json.loads(data)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    assert data == canonical.encode("utf-8")
    assert "Ørsted".encode() in data  # UTF-8, not \u escapes
    assert write_manifest(bundle, meta=META) == doc
    assert (bundle / MANIFEST).read_bytes() == data


def test_manifest_leaves_no_temporary_files(bundle):
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()) == EVERY_FILE


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_sha256sums_checks_with_coreutils(bundle):
    run = subprocess.run(["sha256sum", "-c", SHA256SUMS], cwd=bundle, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": OK") == len(CONTENT)
    (bundle / "report/report.html").write_bytes(b"edited")
    assert subprocess.run(["sha256sum", "-c", SHA256SUMS], cwd=bundle, capture_output=True).returncode != 0


@pytest.mark.parametrize("key", ["files", "format", "format_version"])
def test_write_manifest_refuses_reserved_meta_keys(bundle, key):
    with pytest.raises(ParameterError, match=f"reserved manifest keys \\['{key}'\\]"):
        write_manifest(bundle, meta={key: 1})


def test_write_manifest_refuses_meta_that_is_not_json(bundle):
    with pytest.raises(ParameterError, match="not JSON-serialisable"):
        write_manifest(bundle, meta={"created": object()})
    with pytest.raises(ParameterError, match="not JSON-serialisable"):
        write_manifest(bundle, meta={"score": float("nan")})


@pytest.mark.parametrize(
    ("link", "target"),
    [("report/alias.html", "report.html"), ("escape.txt", "/etc/hostname"), ("linked_dir", "report")],
)
def test_symlink_in_bundle_is_refused(bundle, keypair, link, target):
    (bundle / link).symlink_to(target)
    with pytest.raises(BundleError, match=f"{re.escape(link)}: symlink"):
        write_manifest(bundle, meta=META)
    result = verify_bundle(bundle, pubkey_path=keypair[1])
    assert [str(p) for p in result.problems] == [f"{link}: symlink (not allowed in a bundle)"]


def test_listed_file_replaced_by_symlink_is_reported_once(bundle, keypair):
    (bundle / "report/report.html").unlink()
    (bundle / "report/report.html").symlink_to("findings.jsonl")
    assert problems_of(bundle, keypair[1]) == ["report/report.html: symlink (not allowed in a bundle)"]


def test_file_name_sha256sum_would_escape_is_refused(bundle):
    (bundle / "report" / "a\nb.txt").write_bytes(b"x")
    with pytest.raises(BundleError, match="line break"):
        write_manifest(bundle, meta=META)


# ------------------------------------------------------------------------------- verifying
def test_intact_bundle_verifies_with_the_signers_key(bundle, keypair):
    result = check_bundle(bundle, pubkey_path=keypair[1])
    assert result.ok and result.signature_verified
    assert result.files_checked == len(CONTENT)
    assert result.signer_fingerprint == key_fingerprint(load_public_key(keypair[1]))
    assert result.problems == () and result.notes == ()


def test_without_a_key_the_signature_is_reported_unchecked(bundle):
    result = verify_bundle(bundle)
    assert result.ok and not result.signature_verified
    assert result.signer_fingerprint is None
    assert result.notes == (f"{SIGNATURE}: signature not checked (no public key given)",)


def test_without_a_key_a_rewritten_manifest_goes_unnoticed_but_not_with_it(bundle, keypair):
    """Integrity alone cannot catch someone who edits a file and rewrites the manifest."""
    (bundle / "report/findings.jsonl").write_bytes(b'{"track_id":"T1","n_items":0}\n')
    write_manifest(bundle, meta=META)
    assert verify_bundle(bundle).ok
    with pytest.raises(VerificationError, match="signature does not match the given public key") as e:
        check_bundle(bundle, pubkey_path=keypair[1])
    assert e.value.code == "signature" and e.value.path == SIGNATURE


@pytest.mark.parametrize("name", EVERY_FILE)
def test_every_flipped_byte_of_every_file_fails_naming_the_file(bundle, keypair, name):
    path = bundle / name
    size = path.stat().st_size
    expected_level = "signature" if name in (MANIFEST, SIGNATURE) else "integrity"
    missed = []
    for offset in range(size):
        original = flip_byte(path, offset)
        try:
            check_bundle(bundle, pubkey_path=keypair[1])
            missed.append(f"byte {offset}: verified")
        except VerificationError as e:
            first_line = str(e).splitlines()[0]
            if not named(name, first_line) or e.code != expected_level:
                missed.append(f"byte {offset}: [{e.code}] {first_line}")
        finally:
            path.write_bytes(original)
    assert missed == [], f"{len(missed)} of {size} flips in {name} not reported as such"
    check_bundle(bundle, pubkey_path=keypair[1])


@pytest.mark.parametrize("added", ["extra.txt", "report/extra.jsonl", "new/deep/x.bin", "report/SHA256SUMS",
                                   "manifest.json.minisig", ".hidden"])
def test_added_file_fails_naming_it(bundle, keypair, added):
    (bundle / added).parent.mkdir(parents=True, exist_ok=True)
    (bundle / added).write_bytes(b"planted")
    assert problems_of(bundle, keypair[1]) == [f"{added}: not listed in the manifest (added)"]


@pytest.mark.parametrize("name", EVERY_FILE)
def test_removed_file_fails_naming_it(bundle, keypair, name):
    (bundle / name).unlink()
    with pytest.raises(VerificationError) as e:
        check_bundle(bundle, pubkey_path=keypair[1])
    assert named(name, str(e.value).splitlines()[0])
    assert all("missing" in str(p) for p in e.value.problems)


def test_bundle_signed_with_another_key_fails_against_the_original_key(bundle, keypair, tmp_path):
    other_private, other_public = seeded_keypair(tmp_path / "keys" / "mallory", "another signer")
    assert sign_bundle(bundle, other_private) == key_fingerprint(load_public_key(other_public))
    result = verify_bundle(bundle, pubkey_path=keypair[1])
    assert not result.ok and result.signer_fingerprint is None
    assert [str(p) for p in result.problems] == [
        f"{SIGNATURE}: signature does not match the given public key: {MANIFEST} or its signature was "
        "altered, or another key signed it"
    ]
    assert check_bundle(bundle, pubkey_path=other_public).signer_fingerprint == key_fingerprint(
        load_public_key(other_public)
    )


def test_signature_file_must_be_exactly_what_sign_bundle_writes(bundle, keypair):
    """Variants that decode to the same signature still count as altered: every byte is checked."""
    raw = (bundle / SIGNATURE).read_bytes()
    signature = base64.b64decode(raw)
    body = raw.removesuffix(b"\n")
    assert body.endswith(b"==")  # 64 bytes: the last base64 digit carries 4 padding bits
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-3])
    padded = body[:-3] + bytes([alphabet[last ^ 1]]) + b"=="  # flips a padding bit only
    variants = [body, body + b"\r\n", body + b" \n", b" " + raw, padded + b"\n"]
    for variant in variants:
        assert base64.b64decode(variant) == signature
        (bundle / SIGNATURE).write_bytes(variant)
        assert problems_of(bundle, keypair[1]) == [
            f"{SIGNATURE}: not an Ed25519 signature (one line of base64, 64 bytes)"
        ], variant


def test_size_is_checked_as_well_as_the_digest(bundle):
    doc = json.loads((bundle / MANIFEST).read_bytes())
    doc["files"][0]["size"] += 1
    (bundle / MANIFEST).write_text(json.dumps(doc))
    assert problems_of(bundle, None)[0].startswith(f"{doc['files'][0]['path']}: changed")


def test_unsigned_bundle_fails_when_a_key_is_given(bundle, keypair):
    (bundle / SIGNATURE).unlink()
    assert problems_of(bundle, keypair[1]) == [f"{SIGNATURE}: missing: the bundle is not signed"]
    assert verify_bundle(bundle).ok


def test_key_inside_the_bundle_is_flagged(bundle, keypair):
    (bundle / "keys").mkdir()
    shutil.copy(keypair[1], bundle / "keys" / "signer.pub")
    write_manifest(bundle, meta=META)
    sign_bundle(bundle, keypair[0])
    result = check_bundle(bundle, pubkey_path=bundle / "keys" / "signer.pub")
    assert any("inside the bundle" in note for note in result.notes)


def test_all_problems_are_listed_signature_first(bundle, keypair):
    (bundle / "report/report.html").write_bytes(b"edited")
    (bundle / "methods/config.json").unlink()
    (bundle / "zzz.txt").write_bytes(b"planted")
    (bundle / SIGNATURE).write_bytes(b"not a signature\n")
    (bundle / "a-link").symlink_to("zzz.txt")
    with pytest.raises(VerificationError) as e:
        check_bundle(bundle, pubkey_path=keypair[1])
    lines = str(e.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        SIGNATURE, "a-link", "methods/config.json", "report/report.html", "zzz.txt"
    ]
    assert lines[2:] == [
        "methods/config.json: missing",
        f"report/report.html: changed (sha256 {hashlib.sha256(b'edited').hexdigest()}, 6 bytes; the "
        f"manifest lists sha256 {hashlib.sha256(CONTENT['report/report.html']).hexdigest()}, "
        f"{len(CONTENT['report/report.html'])} bytes)",
        "zzz.txt: not listed in the manifest (added)",
    ]
    assert e.value.code == "signature" and e.value.path == SIGNATURE


def _manifest(files: object = None, **fields: object) -> bytes:
    doc = {"format": "earmark-bundle", "format_version": 1, "files": [] if files is None else files}
    return json.dumps({**doc, **fields}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (_manifest(format="zip"), "format is 'zip', not 'earmark-bundle'"),
        (_manifest(format_version=2), "format_version 2 is not supported"),
        (_manifest(files={"a": 1}), "'files' is not a list"),
        (_manifest([{"path": "a", "sha256": "00", "size": 1}]), r"files\[0\] is not"),
        (_manifest([{"path": "a", "sha256": "0" * 64, "size": True}]), r"files\[0\] is not"),
        (_manifest([{"path": "../outside", "sha256": "0" * 64, "size": 1}]), "'../outside', not a path"),
        (_manifest([{"path": "/etc/hostname", "sha256": "0" * 64, "size": 1}]), "not a path"),
        (_manifest([{"path": SHA256SUMS, "sha256": "0" * 64, "size": 1}]), "not a path"),
        (_manifest([{"path": "a", "sha256": "0" * 64, "size": 1}] * 2), "a second time"),
        (b'{"format":"earmark-bundle","format":"earmark-bundle","format_version":1,"files":[]}',
         "key is repeated"),
    ],
)
def test_malformed_manifest_fails_naming_it(bundle, data, reason):
    (bundle / MANIFEST).write_bytes(data)
    result = verify_bundle(bundle)
    assert not result.ok and result.files_checked == 0
    assert all(p.path == MANIFEST for p in result.problems)
    assert re.search(reason, result.problems[0].reason), result.problems


def test_sign_refuses_a_bundle_that_does_not_match_its_manifest(bundle, keypair):
    signature = (bundle / SIGNATURE).read_bytes()
    (bundle / "report/report.html").write_bytes(b"edited after the manifest")
    with pytest.raises(VerificationError, match=r"^report/report\.html: changed"):
        sign_bundle(bundle, keypair[0])
    assert (bundle / SIGNATURE).read_bytes() == signature


def test_not_a_directory(tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        verify_bundle(tmp_path / "nope")


# ------------------------------------------------------------------------------- keys
def test_generate_keypair_writes_private_key_0600_even_with_a_lax_umask(tmp_path):
    old = os.umask(0)
    try:
        private, public = generate_keypair(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public == tmp_path / "k.pub"
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_private_key(private).public_key() == load_public_key(public)


@pytest.mark.parametrize("existing", ["k", "k.pub"])
def test_generate_keypair_refuses_to_overwrite(tmp_path, existing):
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(KeyFileError, match=f"{existing}: already exists"):
        generate_keypair(tmp_path / "k")
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_fingerprint_is_sha256_of_the_raw_public_key(keypair):
    der = base64.b64decode(b"".join(keypair[1].read_bytes().splitlines()[1:-1]))
    assert len(der) == 44  # 12-byte SubjectPublicKeyInfo header + 32-byte key
    assert key_fingerprint(load_public_key(keypair[1])) == hashlib.sha256(der[-32:]).hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ec_private_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("make", "loader", "message"),
    [
        (lambda d, kp: d / "absent", load_private_key, "no such key file"),
        (lambda d, kp: _write(d / "g", b"\x00garbage\xff"), load_private_key, "not a PEM private key"),
        (lambda d, kp: _write(d / "e", b""), load_public_key, "not a PEM public key"),
        (lambda d, kp: _write(d / "t", kp[0].read_bytes()[:60]), load_private_key, "not a PEM private key"),
        (lambda d, kp: kp[1], load_private_key, "is a public key"),
        (lambda d, kp: kp[0], load_public_key, "is a private key"),
        (lambda d, kp: _write(d / "ec", _ec_private_pem()), load_private_key, "not an Ed25519 key"),
        (lambda d, kp: _write(d / "enc", load_private_key(kp[0]).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"))), load_private_key, "is encrypted"),
    ],
)
def test_unusable_key_files_are_refused_clearly(tmp_path, keypair, make, loader, message):
    path = make(tmp_path, keypair)
    with pytest.raises(KeyFileError, match=f"^{re.escape(str(path))}: .*{message}"):
        loader(path)


def test_verify_with_a_garbled_public_key_is_an_error_not_a_verdict(bundle, tmp_path):
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        verify_bundle(bundle, pubkey_path=_write(tmp_path / "bad.pub", b"-----BEGIN PUBLIC KEY-----\nxx\n"))
