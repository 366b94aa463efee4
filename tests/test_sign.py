"""``idrules sign`` through the real command line: what the customer's server computes (an HMAC
signature or a JWT), checked against what the engine then accepts or refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cli_support import cli
from support import PREVIOUS, SECRET, T0_S, iso

from idrules import Decision, Engine, load_ruleset

T0_TEXT = "2026-03-01T12:00:00Z"
_IDS = itertools.count(1)
CONFORMANCE = "9652701f4e4edfeb3dbd302a91a42580068648c8986f9ac3b62530232d71bd17"


def clean_env(**secrets: str) -> dict[str, str]:
    """The process environment without any IDRULES_ variable, plus ``secrets`` by key name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDRULES_")}
    env.update({f"IDRULES_SECRET_{name.upper()}": value for name, value in secrets.items()})
    return env


def sign(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``idrules sign ARGS`` with the current secret in the environment unless ``env`` is given."""
    done = cli("sign", *args, env=clean_env(current=SECRET) if env is None else env, timeout=60)
    for secret in (SECRET, PREVIOUS):
        assert secret not in done.stdout + done.stderr, "a secret was printed"
    return done


def signed(*args: str, env: dict[str, str] | None = None, warning: str | None = None) -> str:
    """The single line ``idrules sign`` prints (it must succeed); stderr is empty, or one
    ``idrules: warning:`` line holding ``warning`` when one is expected."""
    done = sign(*args, env=env)
    assert done.returncode == 0, done.stderr
    if warning is None:
        assert done.stderr == ""
    else:
        (line,) = done.stderr.splitlines()
        assert line.startswith("idrules: warning: ") and warning in line, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


def failed(*args: str, env: dict[str, str] | None = None, status: int = 1) -> str:
    """The one-line error of a failing ``idrules sign`` (nothing on stdout, no traceback)."""
    done = sign(*args, env=env)
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    if status == 1:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("idrules: error:"), done.stderr
    return done.stderr


def engine(ruleset: Any, **secrets: str) -> Engine:
    return Engine(ruleset, secrets=secrets or {"current": SECRET}, environ={})


def identify(
    e: Engine, payload: dict[str, Any], offset: float = 0, session: str = "s1"
) -> Decision:
    return e.identify(payload, session=session, id=f"e{next(_IDS)}", ts=iso(offset))


def override(tmp_path: Path, text: str, name: str = "override.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def claims_of(tok: str) -> dict[str, Any]:
    return jwt.decode(tok, options={"verify_signature": False})


def verified_by(decision: Decision) -> str:
    assert decision.outcome == "identified", decision.to_json()
    assert decision.identity is not None and decision.identity.verified is True
    (r,) = [r for r in decision.reasons if r.code == "auth.verified"]
    assert r.detail is not None
    return r.detail.split(";")[0].removeprefix("key ")


class TestSignHmac:
    """HMAC rulesets: sign prints the signature the engine verifies."""

    def test_lumio_prints_conformance_hex(self) -> None:
        """lumio: the hex HMAC-SHA256 of the userId (the conformance value), verified."""
        sig = signed("--rules", "lumio", "--user-id", "user_123")
        assert sig == CONFORMANCE
        d = identify(engine("lumio"), {"userId": "user_123", "signature": sig})
        assert verified_by(d) == "current"

    def test_strict_prints_hex(self) -> None:
        """strict: 64 lower-case hex digits over the user id, verified by the engine."""
        sig = signed("--rules", "strict", "--user-id", "u_42")
        expected = hmac.new(SECRET.encode(), b"u_42", hashlib.sha256).hexdigest()
        assert sig == expected
        d = identify(engine("strict"), {"user_id": "u_42", "signature": sig})
        assert verified_by(d) == "current"
        other = identify(engine("strict"), {"user_id": "u_43", "signature": sig})
        assert other.outcome == "rejected"

    def test_helpshift_prints_base64(self, tmp_path: Path) -> None:
        """helpshift: base64 of the HMAC (the userAuthToken), verified with verification on."""
        tok = signed(
            "--rules", "helpshift", "--user-id", "captain_planet", warning="verifies nothing"
        )
        digest = hmac.new(SECRET.encode(), b"captain_planet", hashlib.sha256).digest()
        assert base64.b64decode(tok, validate=True) == digest
        assert len(tok.rstrip("=")) == len("ab+dKOFgxspi3ARXSa/zSdN4wFrU6CQu3hJzHQtXYRI")
        rules = override(tmp_path, "extends: helpshift\nverification: {mode: required}\n")
        d = identify(
            engine(load_ruleset(rules)), {"userId": "captain_planet", "userAuthToken": tok}
        )
        assert verified_by(d) == "current"

    def test_template_with_email_signed_as_given(self, tmp_path: Path) -> None:
        """A {user_id}:{email} template signs both values exactly as given."""
        rules = override(
            tmp_path, 'extends: strict\nverification: {hmac: {message: "{user_id}:{email}"}}\n'
        )
        sig = signed("--rules", str(rules), "--user-id", "u_1", "--email", "Ada@EXAMPLE.com")
        expected = hmac.new(SECRET.encode(), b"u_1:Ada@EXAMPLE.com", hashlib.sha256).hexdigest()
        assert sig == expected
        d = identify(
            engine(load_ruleset(rules)),
            {"user_id": "u_1", "email": "Ada@EXAMPLE.com", "signature": sig},
        )
        assert verified_by(d) == "current"

    def test_claim_refused_for_hmac(self) -> None:
        """--claim is for JWT rulesets: an HMAC ruleset refuses it (exit 1)."""
        failed("--rules", "strict", "--user-id", "u_1", "--claim", "plan=pro")

    def test_nothing_to_sign(self) -> None:
        """Without any value to sign: a one-line error, exit 1."""
        failed("--rules", "strict")


class TestSignJwt:
    """JWT rulesets: a token with the pack's claim names, iat/exp from --at/--expires-in."""

    def test_replyful_token(self) -> None:
        """replyful: userId/email/name claims, iat from --at, exp = iat + --expires-in, --claim."""
        tok = signed(
            "--rules", "replyful", "--user-id", "u_1", "--email", "ada@example.com",
            "--name", "Ada", "--at", T0_TEXT, "--expires-in", "3600",
            "--claim", "plan=pro", "--claim", "mrr=299", "--claim", "beta=true",
        )  # fmt: skip
        assert jwt.get_unverified_header(tok)["alg"] == "HS256"
        claims = jwt.decode(tok, SECRET, algorithms=["HS256"], options={"verify_exp": False})
        assert claims == {
            "userId": "u_1",
            "email": "ada@example.com",
            "name": "Ada",
            "plan": "pro",
            "mrr": 299,
            "beta": True,
            "iat": T0_S,
            "exp": T0_S + 3600,
        }

    def test_replyful_accepted_then_expired(self) -> None:
        """The engine accepts the signed token at --at and refuses it after its expiry."""
        tok = signed(
            "--rules", "replyful", "--user-id", "u_1", "--at", T0_TEXT,
            "--expires-in", "3600", "--claim", "plan=pro",
        )  # fmt: skip
        e = engine("replyful")
        d = identify(e, {"token": tok}, offset=10)
        assert verified_by(d) == "current"
        assert d.identity is not None and d.identity.user_id == "u_1"
        assert dict(d.attributes) == {"plan": "pro"}
        late = identify(e, {"token": tok}, offset=3600 + 31, session="s2")
        assert late.outcome == "anonymous" and "auth.expired" in late.codes
        early = identify(e, {"token": tok}, offset=-3600, session="s3")
        assert early.outcome == "anonymous" and "auth.not_yet_valid" in early.codes

    def test_quackback_token(self) -> None:
        """quackback: sub/email/name/avatarUrl claims, 5-minute default lifetime, verified."""
        tok = signed(
            "--rules", "quackback", "--user-id", "user_123", "--email", "ada@example.com",
            "--name", "Ada", "--avatar", "https://example.com/a.png", "--at", T0_TEXT,
        )  # fmt: skip
        claims = claims_of(tok)
        assert claims == {
            "sub": "user_123",
            "email": "ada@example.com",
            "name": "Ada",
            "avatarUrl": "https://example.com/a.png",
            "iat": T0_S,
            "exp": T0_S + 300,
        }
        e = engine("quackback")
        d = identify(e, {"ssoToken": tok}, offset=60)
        assert verified_by(d) == "current"
        assert d.identity is not None and d.identity.avatar == "https://example.com/a.png"
        late = identify(e, {"ssoToken": tok}, offset=300 + 31, session="s2")
        assert late.outcome == "rejected" and "auth.expired" in late.codes

    def test_quackback_extra_claims_as_attributes(self, tmp_path: Path) -> None:
        """--claim values become attributes the pack's schema override keeps."""
        rules = override(
            tmp_path, "extends: quackback\nattributes: {schema: {plan: {type: string}}}\n"
        )
        tok = signed(
            "--rules", str(rules), "--user-id", "u_1", "--email", "ada@example.com",
            "--at", T0_TEXT, "--claim", "plan=pro", "--claim", "company=Acme",
        )  # fmt: skip
        d = identify(engine(load_ruleset(rules)), {"ssoToken": tok})
        assert verified_by(d) == "current"
        assert dict(d.attributes) == {"plan": "pro"}

    def test_no_expiry(self) -> None:
        """--expires-in 0 issues a token without exp."""
        tok = signed(
            "--rules", "replyful", "--user-id", "u_1", "--at", T0_TEXT, "--expires-in", "0"
        )
        assert "exp" not in claims_of(tok) and claims_of(tok)["iat"] == T0_S

    def test_bad_at_refused(self) -> None:
        """--at must be RFC 3339: anything else is a one-line error, exit 1."""
        failed("--rules", "replyful", "--user-id", "u_1", "--at", "yesterday")

    def test_bad_claim_refused(self) -> None:
        """--claim without '=' is a one-line error, exit 1."""
        failed("--rules", "replyful", "--user-id", "u_1", "--claim", "plan")


class TestSignKeys:
    """--key: sign with a named key of a rotation override."""

    def test_hmac_previous_key(self, tmp_path: Path) -> None:
        """--key previous signs with the retired secret; the engine names it when verifying."""
        rules = override(tmp_path, "extends: strict\nverification: {keys: [current, previous]}\n")
        env = clean_env(current=SECRET, previous=PREVIOUS)
        old = signed("--rules", str(rules), "--user-id", "u_1", "--key", "previous", env=env)
        new = signed("--rules", str(rules), "--user-id", "u_1", env=env)
        assert old == hmac.new(PREVIOUS.encode(), b"u_1", hashlib.sha256).hexdigest() != new
        e = engine(load_ruleset(rules), current=SECRET, previous=PREVIOUS)
        assert verified_by(identify(e, {"user_id": "u_1", "signature": old})) == "previous"
        assert verified_by(identify(e, {"user_id": "u_1", "signature": new})) == "current"
        d = identify(engine("strict"), {"user_id": "u_1", "signature": old})
        assert d.outcome == "rejected"  # once previous is removed

    def test_jwt_previous_key(self, tmp_path: Path) -> None:
        """quackback rotation: a token signed --key previous verifies as key previous."""
        rules = override(
            tmp_path, "extends: quackback\nverification: {keys: [current, previous]}\n"
        )
        env = clean_env(current=SECRET, previous=PREVIOUS)
        tok = signed(
            "--rules", str(rules), "--user-id", "u_1", "--email", "ada@example.com",
            "--at", T0_TEXT, "--key", "previous", env=env,
        )  # fmt: skip
        jwt.decode(tok, PREVIOUS, algorithms=["HS256"], options={"verify_exp": False})
        e = engine(load_ruleset(rules), current=SECRET, previous=PREVIOUS)
        assert verified_by(identify(e, {"ssoToken": tok})) == "previous"

    def test_previous_needs_its_secret(self, tmp_path: Path) -> None:
        """A rotation override without IDRULES_SECRET_PREVIOUS: one-line error naming it."""
        rules = override(tmp_path, "extends: strict\nverification: {keys: [current, previous]}\n")
        err = failed("--rules", str(rules), "--user-id", "u_1", "--key", "previous")
        assert "IDRULES_SECRET_PREVIOUS" in err

    def test_unknown_key_refused(self) -> None:
        """--key naming a key the ruleset does not list: one-line error, exit 1."""
        failed("--rules", "strict", "--user-id", "u_1", "--key", "previous")


class TestSignSecrets:
    """The secret comes only from the environment or --secrets, never from argv or output."""

    def test_missing_secret(self) -> None:
        """No secret anywhere: a one-line error naming IDRULES_SECRET_CURRENT, exit 1."""
        err = failed("--rules", "lumio", "--user-id", "user_123", env=clean_env())
        assert "IDRULES_SECRET_CURRENT" in err

    def test_missing_secret_even_for_disabled_pack(self) -> None:
        """helpshift verifies nothing by default, but signing still needs the secret."""
        err = failed("--rules", "helpshift", "--user-id", "u_1", env=clean_env())
        assert "IDRULES_SECRET_CURRENT" in err

    def test_secrets_file(self, tmp_path: Path) -> None:
        """--secrets FILE ({"current": ...}) gives the same signature as the environment."""
        path = tmp_path / "secrets.json"
        path.write_text(json.dumps({"current": SECRET}), encoding="utf-8")
        sig = signed(
            "--rules", "lumio", "--user-id", "user_123", "--secrets", str(path), env=clean_env()
        )
        assert sig == CONFORMANCE

    def test_short_secret_refused(self) -> None:
        """A secret under 32 bytes is refused: exit 1, one line, the value not shown."""
        short = "short-secret-value"
        err = failed("--rules", "lumio", "--user-id", "u_1", env=clean_env(current=short))
        assert short not in err

    @pytest.mark.parametrize("option", ["--secret", "--key-value", "--password"])
    def test_no_secret_on_the_command_line(self, option: str) -> None:
        """There is no option to pass a secret on the command line (usage error, exit 2)."""
        failed("--rules", "lumio", "--user-id", "u_1", option, SECRET, env=clean_env(), status=2)

    def test_no_secret_in_help(self) -> None:
        """--help documents the secret sources without printing a secret."""
        done = sign("--help")
        assert done.returncode == 0
        assert "--secrets" in done.stdout


class TestSignRefusals:
    """sign never prints a token no verifier can read, nor a proof without a word of warning."""

    @pytest.mark.parametrize("claim", ["exp=1e400", "n=-1e400", "x=NaN", "x=Infinity"])
    def test_non_finite_claim_refused(self, claim: str) -> None:
        """A claim value JSON cannot carry: one-line error, exit 1, no token."""
        err = failed("--rules", "replyful", "--user-id", "u_1", "--claim", claim)
        assert claim.split("=")[0] in err

    def test_text_claims_still_text(self) -> None:
        """A value that is not JSON at all (a word) is still taken as text."""
        tok = signed("--rules", "replyful", "--user-id", "u_1", "--claim", "plan=pro+")
        assert claims_of(tok)["plan"] == "pro+"

    @pytest.mark.parametrize("value", ["-5", "-1"])
    def test_negative_lifetime_refused(self, value: str) -> None:
        """--expires-in below 0 would make an expired token: a one-line usage error, exit 2."""
        err = failed("--rules", "replyful", "--user-id", "u_1", "--expires-in", value, status=2)
        (line,) = err.splitlines()
        assert line.startswith("idrules: error: ") and "--expires-in" in line

    def test_disabled_pack_warns(self) -> None:
        """helpshift verifies nothing by default: the signature comes with a warning."""
        sig = signed(
            "--rules", "helpshift", "--user-id", "u_1", warning="verification.mode: disabled"
        )
        digest = hmac.new(SECRET.encode(), b"u_1", hashlib.sha256).digest()
        assert base64.b64decode(sig) == digest

    def test_verifying_pack_does_not_warn(self) -> None:
        """A pack that verifies prints the proof alone."""
        signed("--rules", "strict", "--user-id", "u_1")

    def test_user_id_not_utf8(self) -> None:
        """A --user-id whose bytes are not UTF-8: one-line error, exit 1, no traceback."""
        done = subprocess.run(
            [sys.executable, "-m", "idrules", "sign", "--rules", "strict", "--user-id", b"u\xff"],
            capture_output=True,
            env=clean_env(current=SECRET),
            timeout=60,
            check=False,
        )
        err = done.stderr.decode(errors="replace")
        assert done.returncode == 1 and done.stdout == b"", err
        (line,) = err.splitlines()
        assert line.startswith("idrules: error: ") and "--user-id" in line
