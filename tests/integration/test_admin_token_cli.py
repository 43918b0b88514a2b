"""`tokenctl admin-token generate --out FILE`: the token file for tokend's
admin endpoints. Needs neither PostgreSQL nor a config, so these tests run
the built tokenctl directly (the `build_dir` fixture and `run` helper of
conftest.py) with no database fixture.
"""

import os
import re
import stat

import pytest

from conftest import clean_env, run

# RFC 6750 b64token, and the length admin_token_file must have; a generated
# token is 43 characters of base64url (32 random bytes, unpadded).
B64TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
GENERATED_RE = re.compile(rb"[A-Za-z0-9_-]{43}\n")


def tokenctl(build_dir, *args, **kwargs):
    """Runs tokenctl with no config and no database settings in sight."""
    return run([build_dir / "tokenctl", *args], check=False, env=clean_env(), **kwargs)


def assert_one_error_line(result, message, status=1):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == f"tokenctl: {message}\n"


def test_generate_writes_a_0600_token_file(build_dir, tmp_path):
    path = tmp_path / "admin.token"
    result = tokenctl(build_dir, "admin-token", "generate", "--out", path)
    # Nothing on either stream: the token is only in the file.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = path.read_bytes()
    assert GENERATED_RE.fullmatch(content), content
    token = content.decode().removesuffix("\n")
    # The rules tokend's admin_token_file loader applies.
    assert B64TOKEN_RE.fullmatch(token)
    assert 32 <= len(token) <= 256


def test_generate_never_overwrites(build_dir, tmp_path):
    path = tmp_path / "admin.token"
    assert tokenctl(build_dir, "admin-token", "generate", "--out", path).returncode == 0
    before = path.read_bytes()
    before_stat = os.stat(path)

    result = tokenctl(build_dir, "admin-token", "generate", "--out", path)
    assert_one_error_line(result, f"{path} already exists; refusing to overwrite it")
    assert path.read_bytes() == before
    after_stat = os.stat(path)
    assert (after_stat.st_ino, after_stat.st_mtime_ns) == (before_stat.st_ino,
                                                           before_stat.st_mtime_ns)

    # Not even a file of someone else's making, or a dangling symlink.
    other = tmp_path / "other"
    other.write_text("keep me\n")
    result = tokenctl(build_dir, "admin-token", "generate", "--out", other)
    assert_one_error_line(result, f"{other} already exists; refusing to overwrite it")
    assert other.read_text() == "keep me\n"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    result = tokenctl(build_dir, "admin-token", "generate", "--out", dangling)
    assert_one_error_line(result, f"{dangling} already exists; refusing to overwrite it")
    assert not (tmp_path / "nowhere").exists()


def test_two_runs_give_different_tokens(build_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert tokenctl(build_dir, "admin-token", "generate", "--out", first).returncode == 0
    assert tokenctl(build_dir, "admin-token", "generate", "--out", second).returncode == 0
    assert first.read_bytes() != second.read_bytes()


def test_mode_is_0600_whatever_the_umask(build_dir, tmp_path):
    path = tmp_path / "admin.token"
    result = tokenctl(build_dir, "admin-token", "generate", "--out", path,
                      preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_needs_no_config_or_database(build_dir, tmp_path):
    """A config file that does not exist and a database URL that goes
    nowhere are never looked at."""
    path = tmp_path / "admin.token"
    result = tokenctl(build_dir, "-c", tmp_path / "no-such.conf", "--db",
                      "postgresql://nobody@127.0.0.1:1/none", "admin-token", "generate",
                      "--out", path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert GENERATED_RE.fullmatch(path.read_bytes())


def test_file_errors(build_dir, tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir" / "admin.token"
    result = tokenctl(build_dir, "admin-token", "generate", "--out", missing_dir)
    assert_one_error_line(result, f"{missing_dir}: cannot create: No such file or directory")
    assert not missing_dir.exists()

    result = tokenctl(build_dir, "admin-token", "generate", "--out", "")
    assert_one_error_line(result, "--out needs a file name")


@pytest.mark.parametrize("args, message", [
    (("admin-token",), "'admin-token' needs a subcommand"),
    (("admin-token", "generate"), "admin-token generate needs --out"),
    (("admin-token", "rotate", "--out", "x"), "unknown command 'admin-token rotate'"),
    (("admin-token", "generate", "--out", "x", "--alg", "HS256"),
     "admin-token generate does not take --alg"),
    (("admin-token", "generate", "--out", "x", "extra"), "unexpected argument 'extra'"),
])
def test_usage_errors_exit_2(build_dir, tmp_path, args, message):
    result = tokenctl(build_dir, *args, cwd=tmp_path)
    assert_one_error_line(result, message + " (see tokenctl --help)", status=2)
    assert not (tmp_path / "x").exists()


def test_help_lists_the_command(build_dir):
    result = tokenctl(build_dir, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "admin-token generate --out FILE" in result.stdout
