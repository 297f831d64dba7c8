"""The local secrets file gains what is missing and keeps what is there."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from shared.consent.authenticity import Keyring, SigningKey
from tests.support.services import ROOT

sys.path.insert(0, str(ROOT / "deploy" / "local"))
import local_secrets


def test_a_missing_file_is_created_with_every_secret_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".local" / "secrets.env"

    added = local_secrets.complete(path)

    assert added == list(local_secrets.SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = local_secrets.read(path)
    ring = Keyring.parse(values["EVENT_VERIFY_KEYS"])
    for name in ("INBOUND_SIGNING_KEY", "DISPATCHER_SIGNING_KEY"):
        key = SigningKey.parse(values[name])
        assert ring.problem(b"{}", [key.header(b"{}")]) is None


def test_an_older_file_keeps_its_secrets_and_gains_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("WHATSAPP_APP_SECRET=kept-secret\nWHATSAPP_VERIFY_TOKEN=kept-token\n")

    added = local_secrets.complete(path)
    again = local_secrets.complete(path)

    values = local_secrets.read(path)
    assert (values["WHATSAPP_APP_SECRET"], values["WHATSAPP_VERIFY_TOKEN"]) == (
        "kept-secret",
        "kept-token",
    )
    assert added == [
        "INBOUND_SIGNING_KEY",
        "DISPATCHER_SIGNING_KEY",
        "EVENT_VERIFY_KEYS",
        "PSEUDONYM_KEY",
        "ERASURE_INDEX_KEY",
        "ERASURE_MASTER_KEYS",
        "ERASURE_ACTIVE_KEY",
    ]
    assert again == []


def test_the_scripts_export_the_secrets_whole_base64_padding_included(tmp_path: Path) -> None:
    script = (
        f'source "{ROOT}/deploy/local/lib.sh"; LOCAL_DIR="{tmp_path}"; load_local_secrets; '
        'printf "%s\\n" "$PSEUDONYM_KEY" "$INBOUND_SIGNING_KEY"'
    )
    clean = {k: v for k, v in os.environ.items() if k not in local_secrets.SECRETS}
    done = subprocess.run(
        ["bash", "-c", script], env=clean, capture_output=True, text=True, check=True
    )

    written = local_secrets.read(tmp_path / "secrets.env")
    exported = done.stdout.split()
    assert exported == [written["PSEUDONYM_KEY"], written["INBOUND_SIGNING_KEY"]]
    assert exported[0].endswith("=")  # 32 bytes in base64 end in padding
