#!/usr/bin/python3
"""A strict checker of the Prometheus text exposition format, version 0.0.4.

Usage: check-prometheus.py [FILE]     (standard input without FILE)
       check-prometheus.py --self-test

Exits 0 when the text is valid; otherwise 1, with one "LINE: what is wrong"
on stderr for each problem found.

Strict means: the grammar of the format with no blanks inside braces and
none at the end of a line, decimal values only (Go's ParseFloat would take
hexadecimal and "inf" too; a scraper of ours must not rely on that), and
the rules Prometheus applies on ingestion made errors here rather than
left to a server: HELP and TYPE once per family and before its samples,
every sampled family with both, counters named *_total, no series twice, a
family's samples together. Standard library only: it runs in the tests with
Debian's /usr/bin/python3.
"""

import re
import sys

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

METRIC_NAME_RE = re.compile(METRIC_NAME + r"\Z")
BLANK_RE = re.compile(r"[ \t]*\Z")
META_RE = re.compile(r"#[ \t]*(HELP|TYPE)(?:[ \t]|\Z)")
HELP_RE = re.compile(r"# HELP (\S+)(?: (.*))?\Z")
TYPE_RE = re.compile(r"# TYPE (\S+) (\S+)\Z")
SAMPLE_NAME_RE = re.compile(METRIC_NAME)
LABEL_RE = re.compile(r'(' + LABEL_NAME + r')="((?:[^"\\\n]|\\.)*)"')
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
TIMESTAMP_RE = re.compile(r"-?[0-9]+\Z")
LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
HELP_ESCAPES = {"\\": "\\", "n": "\n"}


def unescape(text, escapes):
    """The text with its escapes resolved, or None if one is invalid."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in escapes:
                return None
            out.append(escapes[text[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def is_value(text):
    return text in ("+Inf", "-Inf", "NaN") or FLOAT_RE.match(text) is not None


class Family:
    def __init__(self):
        self.help_line = None
        self.type_line = None
        self.type = None
        self.first_sample = None


class Checker:
    def __init__(self):
        self.errors = []
        self.families = {}
        self.series = {}
        self.current = None  # the family of the last sample or metadata line

    def error(self, lineno, what):
        self.errors.append("%d: %s" % (lineno, what))

    def family(self, name):
        return self.families.setdefault(name, Family())

    def family_of(self, name):
        """The family a sample name belongs to: histograms and summaries
        have samples named after the family with a suffix."""
        for suffix, types in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                              ("_count", ("histogram", "summary"))):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                if base in self.families and self.families[base].type in types:
                    return base, suffix
        return name, ""

    def enter(self, lineno, name):
        """Moves to family name, refusing to come back to one whose samples
        another family's lines have already followed."""
        if self.current != name and name in self.families:
            fam = self.families[name]
            if fam.first_sample is not None:
                self.error(lineno, "samples of %s split by lines of %s (first sample on line %d)"
                           % (name, self.current, fam.first_sample))
        self.current = name

    def check_meta(self, lineno, line):
        if line.startswith("# HELP"):
            m = HELP_RE.match(line)
            if not m:
                self.error(lineno, "malformed HELP line (want '# HELP name text')")
                return
            name, text = m.group(1), m.group(2) or ""
            if not METRIC_NAME_RE.match(name):
                self.error(lineno, "invalid metric name %r" % name)
                return
            if unescape(text, HELP_ESCAPES) is None:
                self.error(lineno, "invalid escape in HELP text of %s (only \\\\ and \\n)" % name)
            self.enter(lineno, name)
            fam = self.family(name)
            if fam.help_line is not None:
                self.error(lineno, "second HELP for %s (first on line %d)" % (name, fam.help_line))
            elif fam.first_sample is not None:
                self.error(lineno, "HELP for %s after its samples (line %d)" % (name, fam.first_sample))
            else:
                fam.help_line = lineno
            return
        if line.startswith("# TYPE"):
            m = TYPE_RE.match(line)
            if not m:
                self.error(lineno, "malformed TYPE line (want '# TYPE name type')")
                return
            name, kind = m.group(1), m.group(2)
            if not METRIC_NAME_RE.match(name):
                self.error(lineno, "invalid metric name %r" % name)
                return
            if kind not in TYPES:
                self.error(lineno, "unknown type %r for %s" % (kind, name))
                return
            if kind == "counter" and not name.endswith("_total"):
                self.error(lineno, "counter %s does not end in _total" % name)
            self.enter(lineno, name)
            fam = self.family(name)
            if fam.type_line is not None:
                self.error(lineno, "second TYPE for %s (first on line %d)" % (name, fam.type_line))
            elif fam.first_sample is not None:
                self.error(lineno, "TYPE for %s after its samples (line %d)" % (name, fam.first_sample))
            else:
                fam.type_line = lineno
                fam.type = kind
            return
        self.error(lineno, "malformed HELP or TYPE line (want '# HELP name text' or '# TYPE name type')")

    def parse_labels(self, lineno, line, pos):
        """Parses '{...}' at line[pos]; returns (labels, position after it) or None."""
        labels = {}
        pos += 1
        while True:
            if line.startswith("}", pos):
                return labels, pos + 1
            m = LABEL_RE.match(line, pos)
            if not m:
                self.error(lineno, "malformed label at column %d (want name=\"value\")" % (pos + 1))
                return None
            name, raw = m.group(1), m.group(2)
            if name.startswith("__"):
                self.error(lineno, "label name %s is reserved (starts with __)" % name)
            value = unescape(raw, LABEL_ESCAPES)
            if value is None:
                self.error(lineno, "invalid escape in the value of label %s (only \\\\, \\\" and \\n)" % name)
                return None
            if name in labels:
                self.error(lineno, "label %s twice" % name)
            labels[name] = value
            pos = m.end()
            if line.startswith(",", pos):
                pos += 1
            elif not line.startswith("}", pos):
                self.error(lineno, "expected ',' or '}' at column %d" % (pos + 1))
                return None

    def check_sample(self, lineno, line):
        m = SAMPLE_NAME_RE.match(line)
        if not m:
            self.error(lineno, "not a sample, comment or blank line")
            return
        name, pos = m.group(0), m.end()
        labels = {}
        if line.startswith("{", pos):
            parsed = self.parse_labels(lineno, line, pos)
            if parsed is None:
                return
            labels, pos = parsed
        rest = line[pos:]
        if not rest[:1] in (" ", "\t"):
            self.error(lineno, "expected a blank then the value after %s" % name)
            return
        if rest != rest.rstrip(" \t"):
            self.error(lineno, "blanks at the end of the line")
            return
        fields = rest.split()
        if len(fields) not in (1, 2):
            self.error(lineno, "want 'value [timestamp]' after the name and labels, got %r" % rest.strip())
            return
        if not is_value(fields[0]):
            self.error(lineno, "value %r is not a float, +Inf, -Inf or NaN" % fields[0])
        if len(fields) == 2 and (not TIMESTAMP_RE.match(fields[1]) or
                                 not -2**63 <= int(fields[1]) < 2**63):
            self.error(lineno, "timestamp %r is not an int64 of milliseconds" % fields[1])

        family_name, suffix = self.family_of(name)
        self.enter(lineno, family_name)
        fam = self.family(family_name)
        if fam.first_sample is None:
            fam.first_sample = lineno
            if fam.help_line is None:
                self.error(lineno, "%s has samples but no HELP before them" % family_name)
            if fam.type_line is None:
                self.error(lineno, "%s has samples but no TYPE before them" % family_name)
        if fam.type == "histogram" and suffix == "_bucket":
            self.check_bound(lineno, name, labels, "le")
        if fam.type == "summary" and suffix == "":
            self.check_bound(lineno, name, labels, "quantile")
        key = (name, tuple(sorted(labels.items())))
        if key in self.series:
            self.error(lineno, "series %s%s twice (first on line %d)"
                       % (name, format_labels(labels), self.series[key]))
        else:
            self.series[key] = lineno

    def check_bound(self, lineno, name, labels, label):
        if label not in labels:
            self.error(lineno, "%s has no %s label" % (name, label))
        elif not is_value(labels[label]):
            self.error(lineno, "%s of %s is %r, not a float" % (label, name, labels[label]))

    def check(self, data):
        """Checks the bytes of one exposition; returns the list of errors."""
        if not data:
            self.error(1, "empty input")
            return self.errors
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.error(data.count(b"\n", 0, e.start) + 1, "not UTF-8 (byte %d)" % e.start)
            return self.errors
        lines = text.split("\n")
        if lines[-1] != "":
            self.error(len(lines), "the text does not end with a line feed")
        else:
            lines.pop()
        for lineno, line in enumerate(lines, 1):
            if "\r" in line:
                self.error(lineno, "carriage return (lines end with a line feed alone)")
            elif BLANK_RE.match(line):
                continue
            elif META_RE.match(line):
                self.check_meta(lineno, line)
            elif line.startswith("#"):
                continue
            else:
                self.check_sample(lineno, line)
        return self.errors


def format_labels(labels):
    if not labels:
        return ""
    return "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"


def check_bytes(data):
    return Checker().check(data)


GOOD = [
    ("a counter and a gauge",
     "# HELP a_total Things done.\n# TYPE a_total counter\na_total 3\n"
     "# HELP g Now.\n# TYPE g gauge\ng{x=\"1\"} 1.5\ng{x=\"2\"} -2e-3\n"),
    ("HELP without text, TYPE before HELP, comments and blank lines",
     "# a comment\n\n# TYPE u untyped\n# HELP u\nu 0\n#\n \n"),
    ("escapes in label values and HELP",
     "# HELP e A \\\\ and a\\nnewline; \"quotes\" are literal here.\n# TYPE e gauge\n"
     "e{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n"),
    ("special values, timestamps, a trailing comma, UTF-8 in a value",
     "# HELP s x\n# TYPE s gauge\ns{a=\"+\"} +Inf\ns{a=\"-\"} -Inf 1700000000000\n"
     "s{a=\"n\",} NaN -5\ns{a=\"\u00e9\"} .5\ns{a=\"big\"} 18446744073709551615\n"),
    ("a histogram and a summary",
     "# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
     "h_sum 0.3\nh_count 2\n"
     "# HELP q Sizes.\n# TYPE q summary\nq{quantile=\"0.5\"} 4\nq_sum 9\nq_count 2\n"),
    ("metadata without samples, colons in names",
     "# HELP m_total x\n# TYPE m_total counter\n# HELP rule:x y\n# TYPE rule:x gauge\nrule:x 1\n"),
]

BAD = [
    ("empty input", "", "empty input"),
    ("no final line feed", "# HELP g x\n# TYPE g gauge\ng 1", "does not end with a line feed"),
    ("CR LF", "# HELP g x\r\n# TYPE g gauge\ng 1\n", "carriage return"),
    ("not UTF-8", b"# HELP g \xff\n# TYPE g gauge\ng 1\n", "not UTF-8"),
    ("no HELP", "# TYPE g gauge\ng 1\n", "no HELP"),
    ("no TYPE", "# HELP g x\ng 1\n", "no TYPE"),
    ("no metadata at all", "g 1\n", "no HELP"),
    ("TYPE after samples", "# HELP g x\ng 1\n# TYPE g gauge\n", "TYPE for g after its samples"),
    ("HELP after samples", "# TYPE g gauge\ng 1\n# HELP g x\n", "HELP for g after its samples"),
    ("HELP twice", "# HELP g x\n# HELP g y\n# TYPE g gauge\ng 1\n", "second HELP"),
    ("TYPE twice", "# HELP g x\n# TYPE g gauge\n# TYPE g gauge\ng 1\n", "second TYPE"),
    ("unknown type", "# HELP g x\n# TYPE g gauges\ng 1\n", "unknown type"),
    ("counter without _total", "# HELP c x\n# TYPE c counter\nc 1\n", "does not end in _total"),
    ("malformed HELP", "#  HELP g x\n", "malformed"),
    ("TYPE without a type", "# TYPE g\n", "malformed TYPE"),
    ("bad metric name in HELP", "# HELP 1g x\n", "invalid metric name"),
    ("bad metric name in a sample", "# HELP g x\n# TYPE g gauge\n-g 1\n", "not a sample"),
    ("bad label name", "# HELP g x\n# TYPE g gauge\ng{1a=\"b\"} 1\n", "malformed label"),
    ("reserved label name", "# HELP g x\n# TYPE g gauge\ng{__a=\"b\"} 1\n", "reserved"),
    ("label twice", "# HELP g x\n# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n", "label a twice"),
    ("unquoted label value", "# HELP g x\n# TYPE g gauge\ng{a=b} 1\n", "malformed label"),
    ("bad escape in a label value", "# HELP g x\n# TYPE g gauge\ng{a=\"\\t\"} 1\n", "invalid escape"),
    ("backslash escaping the closing quote", "# HELP g x\n# TYPE g gauge\ng{a=\"\\\"} 1\n",
     "malformed label"),
    ("bad escape in HELP", "# HELP g a \\\" b\n# TYPE g gauge\ng 1\n", "invalid escape in HELP"),
    ("unclosed braces", "# HELP g x\n# TYPE g gauge\ng{a=\"1\" 1\n", "expected ',' or '}'"),
    ("blank inside braces", "# HELP g x\n# TYPE g gauge\ng{ a=\"1\"} 1\n", "malformed label"),
    ("no value", "# HELP g x\n# TYPE g gauge\ng\n", "expected a blank"),
    ("no blank before the value", "# HELP g x\n# TYPE g gauge\ng{a=\"1\"}1\n", "expected a blank"),
    ("value not a float", "# HELP g x\n# TYPE g gauge\ng one\n", "not a float"),
    ("lower-case inf", "# HELP g x\n# TYPE g gauge\ng inf\n", "not a float"),
    ("hexadecimal value", "# HELP g x\n# TYPE g gauge\ng 0x10\n", "not a float"),
    ("bad timestamp", "# HELP g x\n# TYPE g gauge\ng 1 1.5\n", "timestamp"),
    ("timestamp beyond int64", "# HELP g x\n# TYPE g gauge\ng 1 9223372036854775808\n", "timestamp"),
    ("three fields", "# HELP g x\n# TYPE g gauge\ng 1 2 3\n", "want 'value [timestamp]'"),
    ("trailing blank", "# HELP g x\n# TYPE g gauge\ng 1 \n", "blanks at the end"),
    ("duplicate series", "# HELP g x\n# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 2\n",
     "twice"),
    ("duplicate unlabelled series", "# HELP g x\n# TYPE g gauge\ng 1\ng 2\n", "series g twice"),
    ("family split by another", "# HELP g x\n# TYPE g gauge\ng{a=\"1\"} 1\n"
     "# HELP h x\n# TYPE h gauge\nh 1\ng{a=\"2\"} 1\n", "split"),
    ("histogram bucket without le", "# HELP h x\n# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n",
     "no le label"),
    ("summary sample without quantile", "# HELP q x\n# TYPE q summary\nq 1\n", "no quantile label"),
]


def self_test():
    failures = []
    for what, text in GOOD:
        errors = check_bytes(text.encode("utf-8"))
        if errors:
            failures.append("good example '%s' refused: %s" % (what, "; ".join(errors)))
    for what, text, want in BAD:
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        errors = check_bytes(data)
        if not any(want in e for e in errors):
            failures.append("bad example '%s' not refused with '%s': %s"
                            % (what, want, "; ".join(errors) or "accepted"))
    for f in failures:
        print("self-test: " + f, file=sys.stderr)
    if failures:
        return 1
    print("self-test: %d good and %d bad examples as expected" % (len(GOOD), len(BAD)))
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if len(argv) > 1 or (argv and argv[0].startswith("-") and argv[0] != "-"):
        print("usage: check-prometheus.py [FILE] | --self-test", file=sys.stderr)
        return 2
    try:
        if argv and argv[0] != "-":
            with open(argv[0], "rb") as f:
                data = f.read()
        else:
            data = sys.stdin.buffer.read()
    except OSError as e:
        print("check-prometheus.py: %s" % e, file=sys.stderr)
        return 2
    errors = check_bytes(data)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
