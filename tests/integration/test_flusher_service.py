"""`tokend --flusher`: the flusher as its own service.

For layouts where something else spawns the workers (Apache's mod_fcgid),
the flusher runs on its own, owning the instance's shared-memory segment.
Checked here with a segment a crashed instance left behind: the service
takes it over, writes every queued token once, refuses a second owner,
and on SIGTERM removes the segment once it is empty.
"""

import re
import signal
import subprocess

from conftest import (
    COMMAND_TIMEOUT_S, RUN_AS_ROOT, assert_stored_exactly, issue, kill_tokend_hard, segment_name,
    segment_path, segment_stack, shm_name_for_listen, token_row_count, wait_for_rows, wait_until)

FAST_FLUSH = {"flush_interval_ms": "100", "db_timeout_ms": "5000"}
DRAIN_TIMEOUT_S = 30.0


def test_flusher_service_takes_over_a_leftover_segment(build_dir, pg, keys, make_client, tmp_path):
    client = make_client("flusher-service")
    with segment_stack(build_dir, pg, keys, workers=1, settings=FAST_FLUSH) as stack:
        tokend = stack.tokend
        name = segment_name(tokend)
        answers = [issue(stack.port, *client)]
        assert answers[0].status == 200
        wait_for_rows(pg, [client[0]], 1)
        queued = 12
        try:
            pg.stop()
            for _ in range(queued):
                answers.append(issue(stack.port, *client))
            assert {a.status for a in answers} == {200}, answers
            kill_tokend_hard(tokend)
            assert segment_path(name).exists()
        finally:
            pg.start()
        assert token_row_count(pg, [client[0]]) == 1

        log_path = tmp_path / "flusher.log"
        with open(log_path, "w") as log_file:
            service = subprocess.Popen([build_dir / "tokend", "--flusher", "-c",
                                        tokend.config_path], stderr=log_file,
                                       stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_rows(pg, [client[0]], 1 + queued, DRAIN_TIMEOUT_S)
            assert_stored_exactly(pg, [client[0]], answers)
            log = log_path.read_text()
            assert re.search(rf"re-attached shared memory segment {re.escape(name)} left by a "
                             rf"previous run; its {queued} queued token\(s\)", log), log

            # The service owns the segment: an instance of the same
            # configuration cannot take it meanwhile.
            second = subprocess.run([build_dir / "tokend", "--flusher", "-c", tokend.config_path],
                                    capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
            assert second.returncode == 1
            assert f"shared memory segment {name} is in use" in second.stderr, second.stderr

            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=COMMAND_TIMEOUT_S) == 0
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
        assert not segment_path(name).exists(), "an empty segment is removed on stop"
        log = log_path.read_text()
        assert "stopped; every issued token is in the database" in log, log


def test_flusher_service_needs_no_signing_key(build_dir, pg, keys, tmp_path):
    """The flusher signs nothing: a configuration whose key file it cannot
    read still runs it (the workers' hosts need the key, it does not)."""
    config = tmp_path / "flusher.conf"
    config.write_text("issuer = https://auth.example.com\n"
                      f"database_url = {pg.url}\n"
                      f"signing_key_file = {tmp_path / 'absent.pem'}\n"
                      f"listen = unix:{tmp_path / 'unused.sock'}\n"
                      "queue_capacity = 16\n"
                      + "".join(f"{k} = {v}\n" for k, v in RUN_AS_ROOT.items()))
    service = subprocess.Popen([build_dir / "tokend", "--flusher", "-c", config],
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        name = shm_name_for_listen(f"unix:{tmp_path / 'unused.sock'}")
        wait_until(lambda: service.poll() is None and segment_path(name).exists(),
                   10, message="the flusher service to create its segment")
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    assert "every issued token is in the database" in service.stderr.read()
