"""Stored passwords with a scheme header, as LDAP directories keep them in userPassword
(RFC 2307 §5.3 and the schemes OpenLDAP and its modules add): {SSHA}, {SSHA256},
{SSHA512}, {SHA}, {SHA256}, {SHA512}, {SMD5}, {MD5}, {CRYPT} and {PBKDF2-SHA1},
{PBKDF2-SHA256}, {PBKDF2-SHA512}. {CLEARTEXT} and values without a header are
cleartexts: the directory mapping reads those as such, not as hashes.

Pure functions of bytes; {CRYPT} asks the C library's crypt(3) through Python's crypt
module, so it knows the schemes that library knows ($1$, $5$, $6$, $2b$, $y$ ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import warnings

# scheme -> (hash, salted)
_DIGESTS = {"SHA": ("sha1", False), "SSHA": ("sha1", True),
            "SHA256": ("sha256", False), "SSHA256": ("sha256", True),
            "SHA384": ("sha384", False), "SSHA384": ("sha384", True),
            "SHA512": ("sha512", False), "SSHA512": ("sha512", True),
            "MD5": ("md5", False), "SMD5": ("md5", True)}
_PBKDF2 = {"PBKDF2": "sha1", "PBKDF2-SHA1": "sha1", "PBKDF2-SHA256": "sha256",
           "PBKDF2-SHA512": "sha512"}
CLEARTEXT = "CLEARTEXT"
# digest sizes, known once (hashlib.new costs microseconds, and every directory entry's
# password is checked when it is read)
_SIZES = {name: hashlib.new(name).digest_size for name, _ in _DIGESTS.values()}
SCHEMES = (*_DIGESTS, *_PBKDF2, "CRYPT")


def split(stored: str) -> tuple[str, str]:
    """("SSHA", "base64...") for "{SSHA}base64..."; ("", stored) without a header."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1:]
    return "", stored


def problem(stored: str) -> str | None:
    """Why a stored value with a scheme header cannot be checked, or None."""
    scheme, rest = split(stored)
    if scheme not in SCHEMES:
        return f"unknown password scheme {{{scheme}}}"
    try:
        if scheme in _DIGESTS:
            name, salted = _DIGESTS[scheme]
            raw = base64.b64decode(rest, validate=True)
            size = _SIZES[name]
            if len(raw) < size + (1 if salted else 0) or (not salted and len(raw) != size):
                return f"{{{scheme}}} value has the wrong length"
        elif scheme in _PBKDF2:
            _pbkdf2_parts(rest)
        elif not rest:
            return "{CRYPT} value is empty"
    except (ValueError, binascii.Error) as exc:
        return f"{{{scheme}}} value is not valid: {exc}"
    return None


def verify(password: bytes, stored: str) -> bool:
    """Check a cleartext against a value with a scheme header; ValueError when the
    value cannot be checked (unknown scheme, corrupt)."""
    scheme, rest = split(stored)
    why = problem(stored)
    if why:
        raise ValueError(why)
    if scheme in _DIGESTS:
        name, salted = _DIGESTS[scheme]
        raw = base64.b64decode(rest, validate=True)
        size = _SIZES[name]
        digest, salt = raw[:size], raw[size:]
        return hmac.compare_digest(hashlib.new(name, password + salt).digest(), digest)
    if scheme in _PBKDF2:
        iterations, salt, expected = _pbkdf2_parts(rest)
        derived = hashlib.pbkdf2_hmac(_PBKDF2[scheme], password, salt, iterations,
                                      dklen=len(expected))
        return hmac.compare_digest(derived, expected)
    return _crypt_verify(password, rest)


def make(scheme: str, password: bytes, *, salt: bytes = b"", iterations: int = 10_000) -> str:
    """A stored value in one of the digest or PBKDF2 schemes (tests and examples)."""
    scheme = scheme.upper()
    if scheme in _DIGESTS:
        name, salted = _DIGESTS[scheme]
        salt = salt if salted else b""
        raw = hashlib.new(name, password + salt).digest() + salt
        return f"{{{scheme}}}" + base64.b64encode(raw).decode("ascii")
    if scheme in _PBKDF2:
        derived = hashlib.pbkdf2_hmac(_PBKDF2[scheme], password, salt, iterations)
        return f"{{{scheme}}}{iterations}${_ab64(salt)}${_ab64(derived)}"
    raise ValueError(f"cannot make {{{scheme}}}")


def _pbkdf2_parts(rest: str) -> tuple[int, bytes, bytes]:
    """OpenLDAP's pw-pbkdf2 format: <iterations>$<salt>$<hash>, both in the "adapted"
    base64 (. for +, no padding)."""
    parts = rest.split("$")
    if len(parts) != 3:
        raise ValueError("expected <iterations>$<salt>$<hash>")
    iterations = int(parts[0])
    salt, derived = _unab64(parts[1]), _unab64(parts[2])
    if iterations < 1 or not salt or not derived:
        raise ValueError("empty salt or hash, or no iterations")
    return iterations, salt, derived


def _ab64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")


def _unab64(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _crypt_verify(password: bytes, stored: str) -> bool:
    crypt = _crypt_module()
    if crypt is None:
        raise ValueError("{CRYPT} needs the crypt module, which this Python lacks")
    try:
        computed = crypt.crypt(password.decode("utf-8"), stored)
    except (UnicodeDecodeError, OSError):
        return False
    if not computed or computed.startswith("*"):
        raise ValueError("{CRYPT} scheme unknown to this system's crypt(3)")
    return hmac.compare_digest(computed.encode(), stored.encode())


def _crypt_module():
    try:
        with warnings.catch_warnings():  # deprecated since 3.11, gone in 3.13
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt
    except ImportError:
        return None
