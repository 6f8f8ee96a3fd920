"""Ed25519 signing keys for evidence bundles: create, load, and fingerprint them.

A key pair is two PEM files: the private key (PKCS#8, unencrypted, mode 0600) and, beside it with
``.pub`` appended to its name, the public key (SubjectPublicKeyInfo). The public key's fingerprint, the
SHA-256 of its raw 32 bytes in hex, is what people compare out of band (cover letter, website).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from earmark.errors import EarmarkError

__all__ = [
    "KeyFileError",
    "generate_keypair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "public_key_path",
]


class KeyFileError(EarmarkError):
    """A key file cannot be written, read or understood. ``path`` names the file."""

    code = "key"

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def public_key_path(private_key_path: str | os.PathLike[str]) -> Path:
    """Path of the public key written beside a private key: the same name with ``.pub`` appended."""
    path = Path(private_key_path)
    return path.with_name(path.name + ".pub")


def generate_keypair(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create a new Ed25519 key pair on disk.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the private key (PEM, PKCS#8, unencrypted, file mode 0600). The public key (PEM,
        SubjectPublicKeyInfo) goes to the same path with ``.pub`` appended.

    Returns
    -------
    tuple of Path
        ``(private_key_path, public_key_path)``.

    Raises
    ------
    KeyFileError
        If either file already exists (nothing is overwritten) or cannot be written.
    """
    private_path = Path(path)
    public_path = public_key_path(private_path)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for target in (private_path, public_path):
        if os.path.lexists(target):
            raise KeyFileError(target, "already exists; refusing to overwrite a key file")
    _write_new(private_path, private_pem, mode=0o600)
    try:
        _write_new(public_path, public_pem, mode=0o644)
    except KeyFileError:
        private_path.unlink()
        raise
    return private_path, public_path


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a file that must not exist yet, with permissions ``mode``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as e:
        raise KeyFileError(path, "already exists; refusing to overwrite a key file") from e
    except OSError as e:
        raise KeyFileError(path, f"cannot create: {e.strerror}") from e
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; 0600 must be exact for a private key
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise KeyFileError(path, f"cannot write: {e.strerror}") from e


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise KeyFileError(path, "no such key file") from e
    except OSError as e:
        raise KeyFileError(path, f"cannot read key file: {e.strerror}") from e


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key from a PEM (PKCS#8) file.

    Parameters
    ----------
    path : str or os.PathLike
        The private key file, as written by :func:`generate_keypair`.

    Returns
    -------
    Ed25519PrivateKey

    Raises
    ------
    KeyFileError
        If the file is missing or unreadable, is a public key, is encrypted, is not PEM, or holds
        another kind of key.
    """
    path = Path(path)
    data = _read_key_file(path)
    if b"-----BEGIN PUBLIC KEY-----" in data:
        raise KeyFileError(path, "is a public key; signing needs the private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as e:  # raised for an encrypted key loaded without a password
        raise KeyFileError(path, "private key is encrypted; only unencrypted keys are supported") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(path, "not a PEM private key (the file is damaged or of another kind)") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(path, f"not an Ed25519 key (found {type(key).__name__})")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a PEM (SubjectPublicKeyInfo) file.

    Parameters
    ----------
    path : str or os.PathLike
        The public key file, as written by :func:`generate_keypair`.

    Returns
    -------
    Ed25519PublicKey

    Raises
    ------
    KeyFileError
        If the file is missing or unreadable, is a private key, is not PEM, or holds another kind of key.
    """
    path = Path(path)
    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(path, "is a private key; verification takes the public key (.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(path, "not a PEM public key (the file is damaged or of another kind)") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(path, f"not an Ed25519 key (found {type(key).__name__})")
    return key


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """Fingerprint of a public key, for people to compare: SHA-256 of the raw 32-byte key, in hex.

    Parameters
    ----------
    public_key : Ed25519PublicKey

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()
