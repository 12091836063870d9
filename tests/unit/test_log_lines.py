"""One log record is one line of valid UTF-8, whatever a client put in the values it logs."""

import logging

from services.platform.app import LogFormatter
from services.platform.middleware import loggable

FORGED = "2026-12-01 00:00:00,000 WARNING lab.access admin logged in"


def format_record(message: str, *args, exc_info=None) -> str:
    record = logging.LogRecord("lab.access", logging.INFO, __file__, 1, message, args, exc_info)
    return LogFormatter().format(record)


def test_a_newline_in_a_value_stays_on_its_own_line():
    line = format_record("gateway GET %s 404", "/api/x\n" + FORGED + "\r\n")
    assert "\n" not in line and "\r" not in line
    assert "\\n" + FORGED + "\\r\\n" in line


def test_bytes_that_are_not_utf8_are_shown_not_written():
    smuggled = b"/api/\xff\xfe".decode("utf-8", "surrogateescape")
    line = format_record("path %s", smuggled)
    line.encode("utf-8")  # would raise on a lone surrogate
    assert line.endswith("path /api/\\xff\\xfe")


def test_separators_and_controls_are_escaped_and_letters_kept():
    assert loggable("a\u2028b\x1bc\x00\\d é 名") == "a\\u2028b\\x1bc\\x00\\\\d é 名"
    assert loggable(b"x\xffy") == "x\\xffy"
    assert loggable("a" * 10, limit=4) == "aaaa..."


def test_a_traceback_cannot_start_a_line_of_its_own():
    try:
        raise ValueError("bad id\n" + FORGED)
    except ValueError as exc:
        text = format_record("unhandled error on %s", "/api/x", exc_info=(type(exc), exc, exc.__traceback__))
    first, *rest = text.splitlines()
    assert first.endswith("unhandled error on /api/x")
    assert rest and all(line.startswith("  | ") for line in rest)
