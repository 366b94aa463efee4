"""The PostgreSQL server the PostgreSQL store's tests run against (a pytest plugin: the test
modules that need it name it in ``pytest_plugins``).

``IDRULES_TEST_POSTGRES`` names the server, as a libpq URL of a database the tests may connect
to, with a role allowed to create databases, e.g. ``postgresql://postgres@127.0.0.1:5432/test``
(a password from the URL, ``PGPASSWORD`` or ``~/.pgpass``). The tests create a database of
their own for the run (``idrules_test_<random>``), give each test a schema of its own in it,
and drop the database at the end. Unset, the tests that need a server are skipped.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Iterator

import pytest

ENV = "IDRULES_TEST_POSTGRES"
SKIP = f"{ENV} is not set (a PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/test)"


def with_database(url: str, database: str) -> str:
    """``url`` naming another database on the same server."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def with_schema(url: str, schema: str) -> str:
    """``url`` with idrules' schema parameter set."""
    return url + ("&" if "?" in url else "?") + f"idrules_schema={schema}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test run's own (its URL), dropped at the end."""
    server = os.environ.get(ENV)
    if not server:
        pytest.skip(SKIP)
    psycopg = pytest.importorskip("psycopg")
    name = f"idrules_test_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The URL of a fresh, empty store: a schema of this test's own in the run's database."""
    return with_schema(pg_database, f"t_{secrets.token_hex(6)}")
