"""Tests of prometheus_text, the strict exposition-format validator the
integration suite checks tokend's metrics with. Pure parsing: no fixtures,
no PostgreSQL, no daemon.

Every rule has one rejected document below, with the line the error must
name; the accepted documents show the validator is not stricter than the
spec where the spec is clear.
"""

import math

import pytest

from prometheus_text import (PrometheusFormatError, family_total, parse,
                             sample_value)

REALISTIC = (
    "# HELP tokend_token_requests_total Token requests answered, by outcome.\\n"
    "Secret values are never a label; a backslash: \\\\.\n"
    "# TYPE tokend_token_requests_total counter\n"
    'tokend_token_requests_total{outcome="issued",client_id="svc-a"} 1027\n'
    'tokend_token_requests_total{outcome="issued",client_id="svc-b"} 12\n'
    'tokend_token_requests_total{outcome="invalid_client",'
    'client_id="we\\"ird\\\\id\\nline2"} 3 1395066363000\n'
    "\n"
    "# HELP tokend_queue_depth Records waiting for the flusher.\n"
    "# TYPE tokend_queue_depth gauge\n"
    "tokend_queue_depth 12.5\n"
    "# A plain comment between families.\n"
    "# TYPE tokend_flush_last_success_timestamp_seconds gauge\n"
    "tokend_flush_last_success_timestamp_seconds -Inf\n"
    "# HELP tokend_request_duration_seconds Time to answer, by handler.\n"
    "# TYPE tokend_request_duration_seconds histogram\n"
    'tokend_request_duration_seconds_bucket{handler="token",le="0.005"} 10\n'
    'tokend_request_duration_seconds_bucket{handler="token",le="0.01"} 20\n'
    'tokend_request_duration_seconds_bucket{handler="token",le="0.1"} 25\n'
    'tokend_request_duration_seconds_bucket{handler="token",le="+Inf"} 27\n'
    'tokend_request_duration_seconds_sum{handler="token"} 0.625\n'
    'tokend_request_duration_seconds_count{handler="token"} 27\n'
    'tokend_request_duration_seconds_bucket{handler="jwks",le="0.005"} 4\n'
    'tokend_request_duration_seconds_bucket{handler="jwks",le="0.01"} 4\n'
    'tokend_request_duration_seconds_bucket{handler="jwks",le="0.1"} 5\n'
    'tokend_request_duration_seconds_bucket{handler="jwks",le="+Inf"} 5\n'
    'tokend_request_duration_seconds_sum{handler="jwks"} 1.5e-2\n'
    'tokend_request_duration_seconds_count{handler="jwks"} 5\n'
    "# TYPE tokend_pbkdf2_seconds summary\n"
    'tokend_pbkdf2_seconds{quantile="0.5"} 0.08\n'
    'tokend_pbkdf2_seconds{quantile="0.99"} 0.11\n'
    "tokend_pbkdf2_seconds_sum 8.25\n"
    "tokend_pbkdf2_seconds_count 100\n"
    "# HELP tokend_clients_cached Declared, no samples yet.\n"
    "# TYPE tokend_clients_cached gauge\n"
    "tokend_build_info{version=\"0.3.0\",} NaN\n"
)


def test_realistic_document_parses_to_its_values():
    families = parse(REALISTIC)

    assert list(families) == [
        "tokend_token_requests_total", "tokend_queue_depth",
        "tokend_flush_last_success_timestamp_seconds",
        "tokend_request_duration_seconds", "tokend_pbkdf2_seconds",
        "tokend_clients_cached", "tokend_build_info"]

    requests = families["tokend_token_requests_total"]
    assert requests.type == "counter"
    assert requests.help == ("Token requests answered, by outcome.\n"
                             "Secret values are never a label; a backslash: \\.")
    assert [(s.labels, s.value, s.timestamp) for s in requests.samples] == [
        ({"outcome": "issued", "client_id": "svc-a"}, 1027.0, None),
        ({"outcome": "issued", "client_id": "svc-b"}, 12.0, None),
        ({"outcome": "invalid_client", "client_id": 'we"ird\\id\nline2'}, 3.0,
         1395066363000),
    ]

    depth = families["tokend_queue_depth"]
    assert (depth.type, depth.help) == ("gauge", "Records waiting for the flusher.")
    assert sample_value(families, "tokend_queue_depth") == 12.5
    assert sample_value(families, "tokend_flush_last_success_timestamp_seconds") == -math.inf

    duration = families["tokend_request_duration_seconds"]
    assert duration.type == "histogram"
    assert len(duration.samples) == 12
    assert all(s.name.startswith("tokend_request_duration_seconds_") for s in duration.samples)
    assert sample_value(families, "tokend_request_duration_seconds_bucket",
                        handler="token", le="0.01") == 20
    assert sample_value(families, "tokend_request_duration_seconds_sum", handler="jwks") == 0.015
    assert family_total(families, "tokend_request_duration_seconds_count") == 32

    summary = families["tokend_pbkdf2_seconds"]
    assert summary.type == "summary" and summary.help is None
    assert sample_value(families, "tokend_pbkdf2_seconds", quantile="0.99") == 0.11

    assert families["tokend_clients_cached"].samples == []
    assert family_total(families, "tokend_clients_cached") == 0.0

    build = families["tokend_build_info"]
    assert build.type == "untyped"
    assert build.samples[0].labels == {"version": "0.3.0"}
    assert math.isnan(build.samples[0].value)

    assert family_total(families, "tokend_token_requests_total") == 1042


def test_spec_example_parses():
    # The example of exposition_formats.md, as printed there.
    text = (
        "# HELP http_requests_total The total number of HTTP requests.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        'http_requests_total{method="post",code="400"}    3 1395066363000\n'
        "\n"
        "# Escaping in label values:\n"
        'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",'
        'error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9\n'
        "\n"
        "# Minimalistic line:\n"
        "metric_without_timestamp_and_labels 12.47\n"
        "\n"
        "# A weird metric from before the epoch:\n"
        'something_weird{problem="division by zero"} +Inf -3982045\n'
        "\n"
        "# A histogram, which has a pretty complex representation in the text format:\n"
        "# HELP http_request_duration_seconds A histogram of the request duration.\n"
        "# TYPE http_request_duration_seconds histogram\n"
        'http_request_duration_seconds_bucket{le="0.05"} 24054\n'
        'http_request_duration_seconds_bucket{le="0.1"} 33444\n'
        'http_request_duration_seconds_bucket{le="0.2"} 100392\n'
        'http_request_duration_seconds_bucket{le="0.5"} 129389\n'
        'http_request_duration_seconds_bucket{le="1"} 133988\n'
        'http_request_duration_seconds_bucket{le="+Inf"} 144320\n'
        "http_request_duration_seconds_sum 53423\n"
        "http_request_duration_seconds_count 144320\n"
        "\n"
        "# Finally a summary, which has a complex representation, too:\n"
        "# HELP telemetry_requests_metrics_latency_microseconds A summary of the response latency.\n"
        "# TYPE telemetry_requests_metrics_latency_microseconds summary\n"
        'telemetry_requests_metrics_latency_microseconds{quantile="0.01"} 3102\n'
        'telemetry_requests_metrics_latency_microseconds{quantile="0.05"} 3272\n'
        'telemetry_requests_metrics_latency_microseconds{quantile="0.5"} 4773\n'
        'telemetry_requests_metrics_latency_microseconds{quantile="0.9"} 9001\n'
        'telemetry_requests_metrics_latency_microseconds{quantile="0.99"} 76656\n'
        "telemetry_requests_metrics_latency_microseconds_sum 1.7560473e+07\n"
        "telemetry_requests_metrics_latency_microseconds_count 2693\n"
    )
    families = parse(text)
    assert sample_value(families, "msdos_file_access_time_seconds",
                        path="C:\\DIR\\FILE.TXT",
                        error='Cannot find file:\n"FILE.TXT"') == 1.458255915e9
    weird = families["something_weird"].samples[0]
    assert (weird.value, weird.timestamp) == (math.inf, -3982045)
    assert families["http_request_duration_seconds"].type == "histogram"
    assert family_total(families, "http_requests_total") == 1030


@pytest.mark.parametrize("line, value, timestamp", [
    ("m 1\n", 1.0, None),
    ("m\t-0.5\t\t-7\n", -0.5, -7),
    ("   m   1e3   +42   \n", 1000.0, 42),
    ("m .5\n", 0.5, None),
    ("m 5.\n", 5.0, None),
    ("m 1E-3\n", 0.001, None),
    ("m +Inf\n", math.inf, None),
    ("m -inf\n", -math.inf, None),
    ("m Infinity\n", math.inf, None),
    ("m{} 2\n", 2.0, None),
    ('m{a="x"}3\n', 3.0, None),
    ('m { a = "x" , b="y" , } 4 9223372036854775807\n', 4.0, 9223372036854775807),
])
def test_accepted_sample_forms(line, value, timestamp):
    sample = parse(line)["m"].samples[0]
    assert (sample.value, sample.timestamp) == (value, timestamp)


def test_nan_spellings_accepted():
    for spelling in ("NaN", "nan", "Nan"):
        assert math.isnan(sample_value(parse(f"m {spelling}\n"), "m"))


def test_empty_text_blank_lines_and_comments_are_nothing():
    assert parse("") == {}
    assert parse("\n \t\n#\n# help m not a HELP line\n#HELPER x\n") == {}


def test_help_without_text_and_type_with_blanks():
    families = parse("#\tHELP m\n# TYPE  m \t gauge \nm 1\n")
    assert (families["m"].help, families["m"].type) == ("", "gauge")
    # Leading and trailing blanks of a line are not part of the docstring.
    assert parse("# HELP m \t two  words \t\n")["m"].help == "two  words"


def test_error_is_a_value_error_with_the_line_number():
    with pytest.raises(ValueError) as caught:
        parse("a 1\nb x\n")
    assert isinstance(caught.value, PrometheusFormatError)
    assert caught.value.line_number == 2
    assert str(caught.value).startswith("line 2: ")


def test_sample_value_and_family_total_refuse_unknown_names():
    families = parse('m{a="1"} 1\nm{a="2"} 2\n')
    assert sample_value(families, "m", a="2") == 2
    with pytest.raises(KeyError):
        sample_value(families, "m")            # labels must match exactly
    with pytest.raises(KeyError):
        sample_value(families, "m", a="1", b="")
    with pytest.raises(KeyError):
        family_total(families, "m_total")
    assert family_total(families, "m") == 3


def test_parse_takes_text_only():
    with pytest.raises(TypeError):
        parse(b"m 1\n")


# (rule, text, line the error must name, words the message must contain)
HEAD = "# TYPE ok gauge\nok 1\n"   # two valid lines before most offenders
VIOLATIONS = [
    ("no final line feed", HEAD + "m 1", 3, "line feed"),
    ("carriage return", HEAD + "m 1\r\n", 3, "carriage return"),
    ("second HELP", HEAD + "# HELP m a\n# HELP m b\nm 1\n", 4, "second HELP"),
    ("second TYPE", HEAD + "# TYPE m gauge\n# TYPE m gauge\nm 1\n", 4, "second TYPE"),
    ("TYPE after samples", HEAD + "m 1\n# TYPE m gauge\n", 4, "after its samples"),
    ("HELP after samples", HEAD + "m 1\n# HELP m a\n", 4, "after its samples"),
    ("HELP escape other than \\\\ and \\n", HEAD + "# HELP m a\\tb\n", 3, "escape"),
    ("HELP escaped quote", HEAD + '# HELP m a\\"b\n', 3, "escape"),
    ("HELP lone backslash", HEAD + "# HELP m a\\\n", 3, "backslash"),
    ("HELP without name", HEAD + "# HELP\n", 3, "without a metric name"),
    ("HELP bad name", HEAD + "# HELP m{x} a\n", 3, "invalid metric name"),
    ("unknown TYPE", HEAD + "# TYPE m timer\n", 3, "unknown metric type"),
    ("TYPE in capitals", HEAD + "# TYPE m COUNTER\n", 3, "unknown metric type"),
    ("TYPE without type", HEAD + "# TYPE m\n", 3, "without a type"),
    ("TYPE extra token", HEAD + "# TYPE m gauge extra\n", 3, "unexpected text"),
    ("metadata names a member", "# TYPE h histogram\n# HELP h_count c\n", 2, "must name the family"),
    ("metric name starts with digit", HEAD + "1m 1\n", 3, "invalid metric name"),
    ("metric name with dash", HEAD + "m-x 1\n", 3, "invalid character"),
    ("quoted metric name", HEAD + '{"m"} 1\n', 3, "invalid metric name"),
    ("label name starts with digit", HEAD + 'm{1a="x"} 1\n', 3, "invalid label name"),
    ("label name with colon", HEAD + 'm{a:b="x"} 1\n', 3, "expected '='"),
    ("reserved label name", HEAD + 'm{__name__="x"} 1\n', 3, "reserved"),
    ("unquoted label value", HEAD + "m{a=x} 1\n", 3, "not quoted"),
    ("single-quoted label value", HEAD + "m{a='x'} 1\n", 3, "not quoted"),
    ("label value escape \\t", HEAD + 'm{a="x\\ty"} 1\n', 3, "escape"),
    ("label value unterminated", HEAD + 'm{a="x} 1\n', 3, "closing quote"),
    ("label set unterminated", HEAD + 'm{a="x" 1\n', 3, "expected ',' or '}'"),
    ("label set never closed", HEAD + 'm{a="x",\n', 3, "not closed"),
    ("duplicate label name", HEAD + 'm{a="x",a="y"} 1\n', 3, "duplicate label name"),
    ("empty label between commas", HEAD + 'm{a="x",,b="y"} 1\n', 3, "invalid label name"),
    ("comma alone", HEAD + "m{,} 1\n", 3, "invalid label name"),
    ("missing value", HEAD + 'm{a="x"}\n', 3, "no value"),
    ("value not a number", HEAD + "m one\n", 3, "not a float"),
    ("value hex float", HEAD + "m 0x1p3\n", 3, "not a float"),
    ("value with underscore", HEAD + "m 1_000\n", 3, "not a float"),
    ("value signed NaN", HEAD + "m -NaN\n", 3, "not a float"),
    ("value out of range", HEAD + "m 1e400\n", 3, "not a float"),
    ("value with comma", HEAD + "m 1,5\n", 3, "not a float"),
    ("timestamp not an integer", HEAD + "m 1 1.5\n", 3, "int64"),
    ("timestamp out of int64", HEAD + "m 1 9223372036854775808\n", 3, "int64"),
    ("text after timestamp", HEAD + "m 1 2 3\n", 3, "unexpected text"),
    ("non-blank separator", HEAD + "m\u00a01\n", 3, "invalid character"),
    ("family not contiguous", HEAD + 'm{a="1"} 1\nn 1\nm{a="2"} 2\n', 5, "not contiguous"),
    ("histogram not contiguous",
     "# TYPE h histogram\n" 'h_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\nn 1\nh_sum{x="1"} 1\n',
     6, "not contiguous"),
    ("duplicate sample", HEAD + 'm{a="1",b="2"} 1\nm{b="2",a="1"} 2\n', 4, "duplicate sample"),
    ("duplicate unlabelled sample", HEAD + "m 1\nm 1\n", 4, "duplicate sample"),
    ("counter sample with suffix", HEAD + "# TYPE m counter\nm_total 1\n", 4, "does not belong"),
    ("gauge sample with suffix", HEAD + "# TYPE m gauge\nm 1\nm_max 2\n", 5, "does not belong"),
    ("histogram sample without suffix", "# TYPE h histogram\nh 1\n", 2, "no sample named h"),
    ("histogram misspelt bucket", "# TYPE h histogram\nh_buckets{le=\"1\"} 1\n", 2, "does not belong"),
    ("summary with bucket", "# TYPE s summary\ns_bucket{le=\"1\"} 1\n", 2, "does not belong"),
    ("counter negative", HEAD + "# TYPE m counter\nm -1\n", 4, ">= 0"),
    ("counter NaN", HEAD + "# TYPE m counter\nm NaN\n", 4, ">= 0"),
    ("bucket without le", "# TYPE h histogram\nh_bucket{a=\"1\"} 1\n", 2, "no le label"),
    ("le not a float", "# TYPE h histogram\nh_bucket{le=\"fast\"} 1\n", 2, "not a float"),
    ("le NaN", "# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n", 2, "not a float"),
    ("le on count", "# TYPE h histogram\nh_count{le=\"1\"} 1\n", 2, "le label"),
    ("buckets out of order",
     "# TYPE h histogram\n" 'h_bucket{le="2"} 1\nh_bucket{le="1"} 1\n', 3, "must rise"),
    ("bucket after +Inf",
     "# TYPE h histogram\n" 'h_bucket{le="+Inf"} 1\nh_bucket{le="5"} 1\n', 3, "must rise"),
    ("buckets not cumulative",
     "# TYPE h histogram\n" 'h_bucket{le="1"} 5\nh_bucket{le="2"} 4\n', 3, "cumulative"),
    ("bucket count negative", "# TYPE h histogram\nh_bucket{le=\"1\"} -1\n", 2, ">= 0"),
    ("no +Inf bucket",
     "# TYPE h histogram\n" 'h_bucket{le="1"} 1\nh_bucket{le="2"} 1\nh_sum 1\nh_count 1\n',
     3, "+Inf"),
    ("no +Inf bucket in one label set",
     "# TYPE h histogram\n"
     'h_bucket{a="x",le="+Inf"} 1\nh_sum{a="x"} 1\nh_count{a="x"} 1\n'
     'h_sum{a="y"} 1\nh_count{a="y"} 1\n', 5, "+Inf"),
    ("+Inf differs from count",
     "# TYPE h histogram\n" 'h_bucket{le="+Inf"} 3\nh_sum 1\nh_count 4\n', 4, "differs"),
    ("no count",
     "# TYPE h histogram\n" 'h_sum 1\nh_bucket{le="+Inf"} 3\n' + HEAD, 2, "no h_count"),
    ("no sum",
     "# TYPE h histogram\n" 'h_bucket{le="+Inf"} 3\nh_count 3\n', 2, "no h_sum"),
    ("quantile missing", "# TYPE s summary\ns 1\n", 2, "no quantile"),
    ("quantile not a float", "# TYPE s summary\ns{quantile=\"p99\"} 1\n", 2, "not a float"),
    ("quantiles out of order",
     "# TYPE s summary\n" 's{quantile="0.9"} 1\ns{quantile="0.5"} 1\n', 3, "must rise"),
    ("quantile on summary count", "# TYPE s summary\ns_count{quantile=\"1\"} 1\n", 2, "quantile label"),
]


@pytest.mark.parametrize("text, line, words",
                         [case[1:] for case in VIOLATIONS],
                         ids=[case[0] for case in VIOLATIONS])
def test_violation_is_rejected_at_its_line(text, line, words):
    with pytest.raises(PrometheusFormatError) as caught:
        parse(text)
    assert caught.value.line_number == line, str(caught.value)
    assert words in caught.value.message, str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_each_violation_is_a_small_edit_of_a_valid_document():
    # The rejected documents must fail for their rule, not for their context:
    # the shared preamble on its own parses.
    assert sample_value(parse(HEAD), "ok") == 1
