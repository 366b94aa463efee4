"""The cached email check gives email-validator's own answer, address by address."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from idrules.emails import EmailCache, normalize_email

_LOCAL_CHARS = st.sampled_from(list("abcXYZ019._+-!#$%&'*/=?^`{|}~\"\\ (),:;<>@[]é"))
_LOCALS = st.one_of(
    st.sampled_from(["ada", "Ada.Lovelace", "postmaster", "Abuse", "a..b", ".a", "a.", ""]),
    st.text(_LOCAL_CHARS, min_size=0, max_size=12),
    st.text(st.sampled_from("ab"), min_size=60, max_size=70),
)
_DOMAINS = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.ORG",
            "Mail.Example.Net",
            "xn--bcher-kva.example",
            "bücher.example",
            "localhost",
            "example",
            "a-.com",
            "-a.com",
            "example.com.",
            "ex..ample.com",
            "invalid",
            "test",
            "123.45.67.89",
            "[127.0.0.1]",
            "x" * 64 + ".com",
            ("abcdefghij" * 6 + ".") * 4 + "com",
        ]
    ),
    st.text(st.sampled_from(list("abcXY09.-_é")), min_size=0, max_size=20),
)


class TestEmailCache:
    @settings(max_examples=600, deadline=None)
    @given(local=_LOCALS, domain=_DOMAINS, glue=st.sampled_from(["@", "@", "@@", ""]))
    def test_same_answer_as_the_library(self, local: str, domain: str, glue: str) -> None:
        """For any address, the cached check returns what email-validator returns."""
        cache = EmailCache()
        text = f"{local}{glue}{domain}"
        expected = normalize_email(text)
        assert cache(text) == expected
        assert cache(text) == expected  # and again, from the caches
        assert cache(f"other.{local}{glue}{domain}") == normalize_email(
            f"other.{local}{glue}{domain}"
        )

    def test_one_domain_check_serves_every_address_there(self) -> None:
        """Plain addresses at one domain share one library call for the domain."""
        cache = EmailCache()
        for n in range(50):
            assert cache(f"User.{n}@Example.COM") == (
                f"User.{n}@example.com",
                f"user.{n}@example.com",
                None,
            )
        assert list(cache._domains) == ["Example.COM"]

    def test_special_mailbox_names_take_the_library_path(self) -> None:
        """Case-insensitive mailbox names (RFC 2142) are lower-cased as the library does."""
        assert EmailCache()("PostMaster@example.com") == normalize_email("PostMaster@example.com")
        assert EmailCache()("PostMaster@example.com")[0] == "postmaster@example.com"

    def test_failures_carry_the_library_message(self) -> None:
        """An invalid address gets email-validator's own message, not a generic one."""
        value, key, error = EmailCache()("ada@invalid")
        assert value is None and key is None
        assert error == normalize_email("ada@invalid")[2]
