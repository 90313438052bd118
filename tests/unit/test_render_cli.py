"""The render command's --secrets-from: a second render of a stack keeps the first one's
secret values, as a Pulumi stack keeps its secrets across updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hapx.cli import render

PROJECT = Path(__file__).resolve().parents[2]
SECRET_FILES = ("secrets/corosync-authkey.b64", "secrets/stats-password", "secrets/id_ed25519",
                "secrets/id_ed25519.pub", "secrets/known_hosts", "secrets/host-keys/hapx-node01",
                "secrets/host-keys/hapx-node02.pub")


def test_secrets_from_reuses_every_secret(tmp_path):
    first, second, fresh = tmp_path / "first", tmp_path / "second", tmp_path / "fresh"
    assert render.main(["--stack", "dev", "--out", str(first)]) == 0
    assert render.main(["--stack", "dev", "--out", str(second), "--secrets-from", str(first)]) == 0
    assert render.main(["--stack", "dev", "--out", str(fresh)]) == 0
    for name in SECRET_FILES:
        assert (second / name).read_text() == (first / name).read_text(), name
        assert (fresh / name).read_text() != (first / name).read_text(), name
    # The user-data of each node carries the same host key, so its VM need not change.
    for node in ("hapx-node01", "hapx-node02"):
        user_data = (first / "nodes" / node / "user-data").read_text()
        assert (first / "secrets" / "host-keys" / node).read_text().strip().splitlines()[1] in user_data
        assert (second / "nodes" / node / "user-data").read_text() == user_data
    assert (second / "haproxy.cfg").read_text() == (first / "haproxy.cfg").read_text()


def test_secrets_from_names_what_is_missing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"--secrets-from .*empty: .*corosync-authkey.b64 is missing"):
        render.main(["--stack", "dev", "--out", str(tmp_path / "out"), "--secrets-from", str(tmp_path / "empty")])


def test_secrets_from_refuses_its_own_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0
    assert render.main(["--stack", "dev", "--out", str(out), "--secrets-from", str(out)]) == 2
    assert "--secrets-from must name another directory" in capsys.readouterr().err


def test_out_never_deletes_what_is_not_a_render(tmp_path, capsys):
    """--out replaces an earlier render, but refuses a directory holding anything else."""
    precious = tmp_path / "checkout"
    precious.mkdir()
    (precious / ".pulumi-passphrase").write_text("keep me\n")
    assert render.main(["--stack", "dev", "--out", str(precious)]) == 2
    assert "refusing to replace it" in capsys.readouterr().err
    assert (precious / ".pulumi-passphrase").read_text() == "keep me\n"
    out = tmp_path / "out"
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0
    (out / "plan.json").write_text("{}")
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0  # an earlier render is replaced
    assert (out / "plan.json").read_text() != "{}"
    (out / "notes.txt").write_text("mine\n")
    assert render.main(["--stack", "dev", "--out", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "mine\n"


def test_secret_files_are_private(tmp_path):
    out = tmp_path / "out"
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0
    for name in ("secrets/corosync-authkey.b64", "secrets/stats-password", "secrets/id_ed25519",
                 "secrets/host-keys/hapx-node01", "haproxy.cfg", "nodes/hapx-node01/user-data"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
