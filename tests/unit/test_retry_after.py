"""parse_retry_after and parse_reset: the one reader of "come back later" headers."""

from __future__ import annotations

import email.utils

import pytest

from observatory.util.retry_after import parse_http_date, parse_reset, parse_retry_after

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("0", 0.0),
        ("2", 2.0),
        (" 120 ", 120.0),  # optional whitespace around the field value
        ("1.5", 1.5),  # not RFC 9110's 1*DIGIT, but sent, and clear
        ("86400", 86400.0),
        ("3153600000", 3153600000.0),  # a century: the caller caps it
    ],
)
def test_delta_seconds(value: str, wait: float) -> None:
    assert parse_retry_after(value, NOW) == wait


def test_http_dates() -> None:
    ahead = email.utils.formatdate(NOW + 90, usegmt=True)  # IMF-fixdate: "... GMT"
    assert ahead.endswith("GMT")
    assert parse_retry_after(ahead, NOW) == 90.0
    # RFC 850 and asctime, which RFC 9110 says a recipient must read as well
    assert parse_retry_after("Friday, 15-Jan-27 08:01:00 GMT", NOW) == 60.0
    assert parse_retry_after("Fri Jan 15 08:01:00 2027", NOW) == 60.0
    # "-0000" (no zone information): UTC, not the local zone
    assert parse_retry_after(email.utils.formatdate(NOW + 30), NOW) == 30.0
    # a zone other than GMT
    assert parse_retry_after("Fri, 15 Jan 2027 09:00:10 +0100", NOW) == 10.0
    # sub-second clocks: the wait is rounded to the millisecond
    assert parse_retry_after(ahead, NOW + 0.25) == 89.75
    assert parse_retry_after(ahead, NOW + 0.0004) == 90.0


def test_an_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW - 5, usegmt=True), NOW) == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",  # negative: not delta-seconds, so no reason to retry at once
        "+5",
        "1e3",
        "nan",
        "inf",
        "Infinity",
        "0x10",
        "5 s",
        "1.",
        ".5",
        "9" * 400,  # would be float("inf")
        "Fri, 32 Jan 2027 08:00:00 GMT",  # no such day
        "Fri, 15 Foo 2027 08:00:00 GMT",
        "Fri, 15 Jan 2027 25:00:00 GMT",
        "2027-01-15T08:01:00Z",  # ISO 8601 is not an HTTP-date
    ],
)
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_reset_headers() -> None:
    assert parse_reset("45", NOW) == NOW + 45  # small: delta seconds
    assert parse_reset("1800000030", NOW) == NOW + 30  # epoch seconds
    assert parse_reset("1800000030000", NOW) == NOW + 30  # epoch milliseconds
    assert parse_reset("1800000030", NOW, delta_only=True) == NOW + 1_800_000_030
    assert parse_reset(email.utils.formatdate(NOW + 60), NOW) == NOW + 60
    assert parse_reset("0", NOW) == NOW
    for garbage in ("whenever", "-5", "", "nan"):
        assert parse_reset(garbage, NOW) is None


def test_parse_http_date() -> None:
    assert parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    assert parse_http_date("not a date") is None
