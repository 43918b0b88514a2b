"""A strict parser and validator of the Prometheus text exposition format,
version 0.0.4, for checking what tokend serves on its metrics endpoint.

What it is: parse(text) turns one exposition into {family name: Family} and
raises PrometheusFormatError(line_number, message) at the first line that
breaks the format. It is deliberately stricter than Prometheus's own Go parser
(prometheus/common expfmt/text_parse.go), which accepts some documents that
the spec calls undefined; a test that passes here passes there too.

The rules, from content/docs/instrumenting/exposition_formats.md of
prometheus/docs, with the Go parser deciding what the spec leaves open:
  - lines end with "\\n", the text too; no "\\r" anywhere; empty and
    blank-only lines are ignored;
  - tokens are separated by spaces and tabs, any number of them; leading and
    trailing blanks are ignored; blanks are optional where tokens cannot merge
    (around "{", "}", "=", "," and between "}" and the value);
  - "# HELP name text" (escapes \\\\ and \\n only) and "# TYPE name type" at
    most once per family, both before the family's first sample; any other
    "#" line is a comment;
  - a sample is name[{label="value",...}] value [timestamp]: metric names
    [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not
    starting with "__", label values quoted with escapes \\\\ \\" \\n only, no
    duplicate label names, a trailing comma allowed; the value is a Go
    ParseFloat number (decimal, Inf, Infinity or NaN in any case, no hex, no
    "_"), the timestamp a base-10 int64 of milliseconds;
  - all lines of a family form one uninterrupted group; no two samples share
    name and label set;
  - histogram x holds x_bucket (with le), x_sum and x_count; summary x holds
    x (with quantile), x_sum and x_count; any other family holds samples named
    exactly as the family;
  - counter values are >= 0; histogram buckets and counts are >= 0; per label
    set a histogram's buckets rise in le, are cumulative, end with le="+Inf"
    equal to x_count, and x_sum and x_count exist; a summary's quantiles
    rise.

Beyond the spec, on purpose: a sample that would open a new, undeclared family
(no HELP or TYPE) named x_... right after the typed family x is rejected as a
misnamed member of x ("# TYPE x counter" followed by "x_total 1" is a bug in
the exporter, not an untyped family x_total). HELP and TYPE lines must name
the family itself, not one of its suffixed samples.

Which family a sample belongs to follows the Go parser: the family of exactly
that name if there is one, else histogram/summary x for x_bucket, x_sum and
x_count, else a new untyped family of that name.

Failure behaviour: the first violation raises PrometheusFormatError, a
ValueError carrying line_number (1-based) and message; nothing is returned.
Checks that need a whole family (a histogram's +Inf bucket, x_sum, x_count)
run when the family's group ends and name the line where the gap shows.

parse() takes str; decode the HTTP body strictly as UTF-8 first.
Standard library only.
"""

import math
import re
from dataclasses import dataclass, field

__all__ = ["PrometheusFormatError", "Sample", "Family", "parse",
           "sample_value", "family_total"]

METRIC_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# strconv.ParseFloat's decimal syntax. Python's float() also takes "1_0",
# surrounding whitespace and non-ASCII digits, so it only runs after this.
_DECIMAL_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# ParseFloat's special values, compared in lower case; NaN takes no sign.
_SPECIAL_FLOATS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}
_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_BLANKS = " \t"

_HELP_ESCAPES = {"\\": "\\", "n": "\n"}
_LABEL_VALUE_ESCAPES = {"\\": "\\", "n": "\n", '"': '"'}

# The suffixed samples a histogram or summary family owns.
_MEMBER_SUFFIXES = (("_bucket", ("histogram",)),
                    ("_sum", ("histogram", "summary")),
                    ("_count", ("histogram", "summary")))


class PrometheusFormatError(ValueError):
    """The exposition breaks the format at line_number (1-based)."""

    def __init__(self, line_number, message):
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number
        self.message = message


@dataclass
class Sample:
    name: str
    labels: dict
    value: float
    timestamp: int | None = None


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list = field(default_factory=list)


def parse_go_float(token):
    """Returns the float strconv.ParseFloat (as Prometheus calls it) reads
    from token, or None when it would refuse it (including out of range)."""
    if token.lower() in _SPECIAL_FLOATS:
        return float(token.lower())
    if not _DECIMAL_FLOAT_RE.fullmatch(token):
        return None
    value = float(token)
    if math.isinf(value):
        return None  # ParseFloat fails with ErrRange
    return value


def parse(text):
    """Parses one exposition; returns {family name: Family} in document
    order, or raises PrometheusFormatError at the first violation."""
    if not isinstance(text, str):
        raise TypeError("parse() takes str; decode the body as UTF-8 first")
    return _Parser().run(text)


def sample_value(families, name, /, **labels):
    """The value of the sample called name whose labels are exactly labels;
    KeyError when there is none."""
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise KeyError(f"no sample {_describe(name, labels)}")


def family_total(families, name):
    """The sum of the values of all samples called name, over every label
    set. A declared family of that name with no samples yet totals 0.0;
    a name that matches neither a sample nor a family raises KeyError."""
    values = [sample.value for family in families.values()
              for sample in family.samples if sample.name == name]
    if values:
        return math.fsum(values)
    if name in families and not families[name].samples:
        return 0.0
    raise KeyError(f"no sample named {name}")


def _describe(name, labels):
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}" if labels else name


class _LineError(Exception):
    """A syntax error inside the line being read; _Parser adds the number."""


class _Series:
    """What one label set (le/quantile aside) of a histogram or summary has
    shown so far."""

    def __init__(self, first_line):
        self.first_line = first_line
        self.last_bound = None        # le or quantile of the latest bucket/quantile
        self.last_bound_text = None
        self.last_bucket_count = None
        self.last_bucket_line = None
        self.inf_bucket = None        # (value, line) of le="+Inf"
        self.sum_line = None
        self.count = None             # (value, line) of x_count


class _FamilyState:
    def __init__(self, first_line):
        self.first_line = first_line
        self.help_line = None
        self.type_line = None
        self.series = {}              # frozenset of labels -> _Series


class _Parser:
    def __init__(self):
        self.families = {}
        self.states = {}
        self.current = None           # name of the family whose group is open
        self.seen_samples = {}        # (name, frozenset(labels)) -> line

    def run(self, text):
        if not text:
            return self.families
        lines = text.split("\n")
        if lines[-1] != "":
            raise PrometheusFormatError(
                len(lines), "the text does not end with a line feed")
        lines.pop()
        for number, line in enumerate(lines, start=1):
            if "\r" in line:
                raise PrometheusFormatError(
                    number, "carriage return in line (lines end with \\n only)")
            try:
                self.line(number, line)
            except _LineError as error:
                raise PrometheusFormatError(number, str(error)) from None
        if self.current is not None:
            self.finish_family(self.current)
        return self.families

    # -- lines ---------------------------------------------------------------

    def line(self, number, line):
        pos = _skip_blanks(line, 0)
        if pos == len(line):
            return  # empty or blank-only
        if line[pos] == "#":
            self.comment_line(number, line, pos + 1)
        else:
            self.sample_line(number, line, pos)

    def comment_line(self, number, line, pos):
        pos = _skip_blanks(line, pos)
        keyword, pos = _token(line, pos)
        if keyword not in ("HELP", "TYPE"):
            return  # a plain comment
        pos = _skip_blanks(line, pos)
        match = _METRIC_NAME_RE.match(line, pos)
        if pos == len(line):
            raise _LineError(f"{keyword} line without a metric name")
        if not match or (match.end() < len(line) and line[match.end()] not in _BLANKS):
            raise _LineError(f"invalid metric name {_token(line, pos)[0]!r} in {keyword} line")
        name = match.group()
        pos = _skip_blanks(line, match.end())
        family = self.enter_metadata_family(number, name, keyword)
        state = self.states[name]
        if keyword == "HELP":
            if state.help_line is not None:
                raise _LineError(f"second HELP line for {name} (first on line {state.help_line})")
            if family.samples:
                raise _LineError(f"HELP line for {name} after its samples")
            family.help = _unescape_help(line[pos:].rstrip(_BLANKS))
            state.help_line = number
        else:
            type_name, pos = _token(line, pos)
            if not type_name:
                raise _LineError(f"TYPE line for {name} without a type")
            if type_name not in METRIC_TYPES:
                raise _LineError(f"unknown metric type {type_name!r} for {name}")
            pos = _skip_blanks(line, pos)
            if pos != len(line):
                raise _LineError(f"unexpected text after the type of {name}: {line[pos:]!r}")
            if state.type_line is not None:
                raise _LineError(f"second TYPE line for {name} (first on line {state.type_line})")
            if family.samples:
                raise _LineError(f"TYPE line for {name} after its samples")
            family.type = type_name
            state.type_line = number

    def sample_line(self, number, line, pos):
        name, labels, value, timestamp = _read_sample(line, pos)
        family_name = self.resolve(name)
        if family_name is None:
            self.check_not_misnamed_member(name)
            family_name = name
        family = self.enter_family(number, family_name)
        key = (name, frozenset(labels.items()))
        if key in self.seen_samples:
            raise _LineError(f"duplicate sample {_describe(name, labels)} "
                             f"(first on line {self.seen_samples[key]})")
        self.seen_samples[key] = number
        self.check_member(number, family, name, labels, value)
        family.samples.append(Sample(name, labels, value, timestamp))

    # -- families --------------------------------------------------------------

    def resolve(self, name):
        """The existing family a sample called name belongs to, or None."""
        if name in self.families:
            return name
        for suffix, types in _MEMBER_SUFFIXES:
            base = name[:-len(suffix)]
            if name.endswith(suffix) and base and base in self.families \
                    and self.families[base].type in types:
                return base
        return None

    def enter_metadata_family(self, number, name, keyword):
        if name not in self.families:
            owner = self.resolve(name)
            if owner is not None:
                raise _LineError(f"{keyword} line names {name}, a sample of "
                                 f"{self.families[owner].type} {owner}; it must name the family")
        return self.enter_family(number, name)

    def enter_family(self, number, name):
        """Makes name the open family, creating it; raises when its group
        was already closed by another family."""
        if name == self.current:
            return self.families[name]
        if name in self.families:
            raise _LineError(f"lines of family {name} (from line {self.states[name].first_line}) "
                             f"are not contiguous: family {self.current} came in between")
        if self.current is not None:
            self.finish_family(self.current)
        self.families[name] = Family(name)
        self.states[name] = _FamilyState(number)
        self.current = name
        return self.families[name]

    def check_not_misnamed_member(self, name):
        current = self.families.get(self.current)
        if current is None or current.type == "untyped" or not name.startswith(current.name + "_"):
            return
        if current.type in ("counter", "gauge"):
            expected = f"{current.type} samples are named exactly {current.name}"
        elif current.type == "histogram":
            expected = f"expected {current.name}_bucket, {current.name}_sum or {current.name}_count"
        else:
            expected = f"expected {current.name}, {current.name}_sum or {current.name}_count"
        raise _LineError(f"sample {name} does not belong to {current.type} {current.name} "
                         f"(TYPE on line {self.states[current.name].type_line}): {expected}")

    def check_member(self, number, family, name, labels, value):
        kind = family.type
        if kind == "counter" and not value >= 0:
            raise _LineError(f"counter {name} has value {value!r}; counters are >= 0")
        if kind == "histogram":
            self.check_histogram_sample(number, family, name, labels, value)
        elif kind == "summary":
            self.check_summary_sample(number, family, name, labels, value)

    def check_histogram_sample(self, number, family, name, labels, value):
        base = family.name
        if name not in (base + "_bucket", base + "_sum", base + "_count"):
            raise _LineError(f"histogram {base} has no sample named {name} "
                             f"(expected {base}_bucket, {base}_sum or {base}_count)")
        series_labels = {k: v for k, v in labels.items() if k != "le"}
        series = self.series(number, family, series_labels)
        where = _describe(name, labels)
        if name != base + "_sum" and not value >= 0:
            raise _LineError(f"{where} has value {value!r}; histogram counts are >= 0")
        if name == base + "_sum":
            if "le" in labels:
                raise _LineError(f"{where} carries an le label")
            series.sum_line = number
            return
        if name == base + "_count":
            if "le" in labels:
                raise _LineError(f"{where} carries an le label")
            series.count = (value, number)
            return
        if "le" not in labels:
            raise _LineError(f"histogram bucket {where} has no le label")
        bound = parse_go_float(labels["le"])
        if bound is None or math.isnan(bound):
            raise _LineError(f"le={labels['le']!r} of {where} is not a float")
        if series.last_bound is not None and not bound > series.last_bound:
            raise _LineError(f"bucket le={labels['le']!r} of {where} comes after "
                             f"le={series.last_bound_text!r}; buckets must rise in le")
        if series.last_bucket_count is not None and value < series.last_bucket_count:
            raise _LineError(f"bucket {where} counts {value!r}, less than the "
                             f"{series.last_bucket_count!r} of le={series.last_bound_text!r}; "
                             f"buckets are cumulative")
        series.last_bound = bound
        series.last_bound_text = labels["le"]
        series.last_bucket_count = value
        series.last_bucket_line = number
        if bound == math.inf:
            series.inf_bucket = (value, number)

    def check_summary_sample(self, number, family, name, labels, value):
        base = family.name
        if name not in (base, base + "_sum", base + "_count"):
            raise _LineError(f"summary {base} has no sample named {name} "
                             f"(expected {base}, {base}_sum or {base}_count)")
        where = _describe(name, labels)
        series = self.series(number, family, {k: v for k, v in labels.items() if k != "quantile"})
        if name != base:
            if "quantile" in labels:
                raise _LineError(f"{where} carries a quantile label")
            if name == base + "_count" and not value >= 0:
                raise _LineError(f"{where} has value {value!r}; counts are >= 0")
            return
        if "quantile" not in labels:
            raise _LineError(f"summary sample {where} has no quantile label")
        bound = parse_go_float(labels["quantile"])
        if bound is None or math.isnan(bound):
            raise _LineError(f"quantile={labels['quantile']!r} of {where} is not a float")
        if series.last_bound is not None and not bound > series.last_bound:
            raise _LineError(f"quantile={labels['quantile']!r} of {where} comes after "
                             f"quantile={series.last_bound_text!r}; quantiles must rise")
        series.last_bound = bound
        series.last_bound_text = labels["quantile"]

    def series(self, number, family, series_labels):
        state = self.states[family.name]
        key = frozenset(series_labels.items())
        if key not in state.series:
            state.series[key] = _Series(number)
        return state.series[key]

    def finish_family(self, name):
        """Checks what only a whole family shows; raises at the line where
        the gap shows."""
        family = self.families[name]
        if family.type != "histogram":
            return
        for key, series in self.states[name].series.items():
            where = _describe(name, dict(sorted(key)))
            last_line = series.last_bucket_line or series.first_line
            if series.inf_bucket is None:
                raise PrometheusFormatError(
                    last_line, f"histogram {where} has no le=\"+Inf\" bucket")
            if series.count is None:
                raise PrometheusFormatError(
                    series.first_line, f"histogram {where} has no {name}_count")
            if series.sum_line is None:
                raise PrometheusFormatError(
                    series.first_line, f"histogram {where} has no {name}_sum")
            (inf_value, inf_line), (count_value, count_line) = series.inf_bucket, series.count
            if inf_value != count_value:
                raise PrometheusFormatError(
                    max(inf_line, count_line),
                    f"histogram {where}: le=\"+Inf\" bucket {inf_value!r} (line {inf_line}) "
                    f"differs from {name}_count {count_value!r} (line {count_line})")


# -- reading one line ------------------------------------------------------------

def _skip_blanks(line, pos):
    while pos < len(line) and line[pos] in _BLANKS:
        pos += 1
    return pos


def _token(line, pos):
    """The run of non-blank characters at pos, and the position after it."""
    end = pos
    while end < len(line) and line[end] not in _BLANKS:
        end += 1
    return line[pos:end], end


def _unescape(text, escapes, what):
    out = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            if pos + 1 == len(text):
                raise _LineError(f"{what} ends with a lone backslash")
            escaped = text[pos + 1]
            if escaped not in escapes:
                raise _LineError(f"invalid escape sequence \\{escaped} in {what}")
            out.append(escapes[escaped])
            pos += 2
        else:
            out.append(char)
            pos += 1
    return "".join(out)


def _unescape_help(raw):
    return _unescape(raw, _HELP_ESCAPES, "HELP text")


def _read_sample(line, pos):
    """Reads name[{labels}] value [timestamp] from pos to the end of line."""
    match = _METRIC_NAME_RE.match(line, pos)
    if not match:
        raise _LineError(f"invalid metric name at {line[pos:pos + 20]!r}")
    name = match.group()
    pos = match.end()
    if pos == len(line):
        raise _LineError(f"sample {name} has no value")
    if line[pos] not in _BLANKS and line[pos] != "{":
        raise _LineError(f"invalid character {line[pos]!r} after metric name {name}")
    pos = _skip_blanks(line, pos)
    labels = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _read_labels(line, pos + 1, name)
        pos = _skip_blanks(line, pos)
    value_token, pos = _token(line, pos)
    if not value_token:
        raise _LineError(f"sample {_describe(name, labels)} has no value")
    value = parse_go_float(value_token)
    if value is None:
        raise _LineError(f"value {value_token!r} of {name} is not a float")
    pos = _skip_blanks(line, pos)
    if pos == len(line):
        return name, labels, value, None
    timestamp_token, pos = _token(line, pos)
    if not _INT64_RE.fullmatch(timestamp_token) \
            or not _INT64_MIN <= int(timestamp_token) <= _INT64_MAX:
        raise _LineError(f"timestamp {timestamp_token!r} of {name} is not an int64")
    pos = _skip_blanks(line, pos)
    if pos != len(line):
        raise _LineError(f"unexpected text after the timestamp of {name}: {line[pos:]!r}")
    return name, labels, value, int(timestamp_token)


def _read_labels(line, pos, metric_name):
    """Reads the label set after "{"; returns it and the position after
    "}"."""
    labels = {}
    while True:
        pos = _skip_blanks(line, pos)
        if pos == len(line):
            raise _LineError(f"label set of {metric_name} is not closed")
        if line[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME_RE.match(line, pos)
        if not match:
            raise _LineError(f"invalid label name at {line[pos:pos + 20]!r} in {metric_name}")
        label = match.group()
        if label.startswith("__"):
            raise _LineError(f"label name {label} of {metric_name} is reserved (starts with __)")
        if label in labels:
            raise _LineError(f"duplicate label name {label} in {metric_name}")
        pos = _skip_blanks(line, match.end())
        if pos == len(line) or line[pos] != "=":
            raise _LineError(f"expected '=' after label name {label} in {metric_name}")
        pos = _skip_blanks(line, pos + 1)
        if pos == len(line) or line[pos] != '"':
            raise _LineError(f"value of label {label} in {metric_name} is not quoted")
        labels[label], pos = _read_label_value(line, pos + 1, metric_name, label)
        pos = _skip_blanks(line, pos)
        if pos == len(line):
            raise _LineError(f"label set of {metric_name} is not closed")
        if line[pos] == ",":
            pos += 1
        elif line[pos] != "}":
            raise _LineError(f"expected ',' or '}}' after label {label} in {metric_name}, "
                             f"found {line[pos]!r}")


def _read_label_value(line, pos, metric_name, label):
    """Reads a quoted label value from just after its opening quote; returns
    the unescaped value and the position after the closing quote."""
    start = pos
    while pos < len(line):
        if line[pos] == "\\":
            pos += 2
        elif line[pos] == '"':
            what = f"value of label {label} in {metric_name}"
            return _unescape(line[start:pos], _LABEL_VALUE_ESCAPES, what), pos + 1
        else:
            pos += 1
    raise _LineError(f"value of label {label} in {metric_name} has no closing quote")
