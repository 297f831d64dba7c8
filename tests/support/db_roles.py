"""The service roles' URLs (docs/security.md) for a database of the tests, so that
the services the tests start connect as `make up` connects them and the suite
proves the roles suffice. They come from `deploy/local/postgres.sh role-urls`
when that database is served by a local cluster of this clone (which made the
roles and knows their passwords); anywhere else there are none, and the services
fall back to DATABASE_URL, the owner's."""

import functools
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

POSTGRES_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "postgres.sh"


def parse_role_urls(text: str) -> dict[str, str]:
    """Reads `VARIABLE=URL` lines, as `postgres.sh role-urls` prints them."""
    urls = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and value:
            urls[name] = value
    return urls


def on_database(url: str, database_url: str) -> str:
    """`url` (a role's) pointed at the database of `database_url`: the roles belong
    to the cluster, and a private test database is migrated with their grants."""
    return urlsplit(url)._replace(path=urlsplit(database_url).path).geturl()


def _script(*args: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"PG_PORT": str(port)}
    return subprocess.run(
        ["bash", str(POSTGRES_SH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@functools.cache
def _cluster_role_urls(user: str, host: str, port: int) -> dict[str, str]:
    served = _script("url", port=port)
    local = urlsplit(served.stdout.strip())
    if served.returncode != 0 or (local.username, local.hostname) != (user, host):
        return {}
    listed = _script("role-urls", port=port)
    return parse_role_urls(listed.stdout) if listed.returncode == 0 else {}


def local_role_urls(database_url: str) -> dict[str, str]:
    """The role URLs for `database_url`'s database, or {} when no local cluster of
    ours serves it (or its roles were never made: postgres.sh start makes them)."""
    url = urlsplit(database_url)
    host = "127.0.0.1" if url.hostname == "localhost" else url.hostname
    if host != "127.0.0.1" or url.port is None or url.username is None:
        return {}
    urls = _cluster_role_urls(url.username, host, url.port)
    return {name: on_database(role_url, database_url) for name, role_url in urls.items()}
