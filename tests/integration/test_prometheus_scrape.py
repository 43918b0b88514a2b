"""A real Prometheus (Debian's `prometheus` package) scrapes tokend's
/metrics through the shipped nginx block with the admin token, the way
README's scrape job says, and what it stores matches what tokend did.

Besides the strict parser of test_prometheus_text.py this checks the
format with the parser Prometheus itself uses, and the README's scrape
configuration (`authorization: {credentials_file: ...}`)."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, running_stack, wait_until
from test_admin import admin_settings, admin_token  # noqa: F401 - fixture

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SOON_S = 30.0


def query(port, expression):
    """The instant vector of `expression` as {frozenset(labels): value};
    {} while Prometheus is not answering yet."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression})
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.load(answer)
    except OSError:
        return {}
    assert body["status"] == "success", body
    return {frozenset(item["metric"].items()): float(item["value"][1])
            for item in body["data"]["result"]}


def single(port, expression):
    values = query(port, expression)
    return next(iter(values.values())) if len(values) == 1 else None


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="needs Debian's prometheus package")
def test_real_prometheus_scrapes_metrics(build_dir, pg, keys, client, admin_token, tmp_path):
    # noqa above: admin_token is the fixture imported from test_admin
    token_path, token = admin_token
    with running_stack(build_dir, pg, keys, workers=2,
                       settings=admin_settings(admin_token)) as stack:
        issued = 0
        for _ in range(25):
            assert stack.token(*client).status == 200
            issued += 1
        refused = stack.token(client[0], "wrong-secret")
        assert refused.status == 401

        # promtool, Prometheus's own checker, on what tokend serves.
        metrics = urllib.request.urlopen(urllib.request.Request(
            f"{stack.issuer}/metrics", headers={"Authorization": f"Bearer {token}"}),
            timeout=5).read()
        checked = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics,
                                 capture_output=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        port = free_port()
        target = urllib.parse.urlsplit(stack.issuer).netloc
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: tokend\n"
            f"    authorization: {{credentials_file: {token_path}}}\n"
            f"    static_configs: [{{targets: [\"{target}\"]}}]\n")
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: single(port, 'up{job="tokend"}') == 1.0, SOON_S,
                       message="Prometheus to scrape tokend successfully")
            wait_until(lambda: single(port, "tokend_tokens_issued_total") == issued, SOON_S,
                       message=f"tokend_tokens_issued_total to read {issued}")
            errors = query(port, "tokend_token_errors_total")
            by_error = {dict(labels)["error"]: value for labels, value in errors.items()}
            assert by_error["invalid_client"] == 1.0, by_error
            assert single(port, "tokend_workers") == 2.0
            count = single(port, "tokend_token_request_duration_seconds_count")
            assert count == issued + 1, count
            # Prometheus computes from the buckets: a latency quantile exists.
            p99 = single(port, "histogram_quantile(0.99, "
                               "tokend_token_request_duration_seconds_bucket)")
            assert p99 is not None and p99 > 0, p99
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
