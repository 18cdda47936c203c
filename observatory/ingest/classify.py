"""Outcome classification: HTTP status and vendor error codes -> one of OUTCOMES.

The rules live here once, as SQL, because classification runs inside DuckDB on whole
batches. The precedence is DESIGN's: an explicit outcome field wins; then the vendor's
body code (TikTok answers HTTP 200 with code 40100 when it throttles); then the HTTP status;
then, with no status at all, an error means the request failed (timeouts, resets).
"""

from __future__ import annotations

from observatory.store.schema import OUTCOME_TYPE
from observatory.util.sqltext import sql_list, sql_str

# Vendor codes (DESIGN "Outcome classification", wire-formats.md).
RATE_LIMIT_CODES: dict[str, tuple[str, ...]] = {
    "tiktok": ("40100", "40016", "40132", "40133"),
    "meta": ("4", "17", "32", "341", "613", *(str(c) for c in range(80000, 80006))),
    "google_ads": ("RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED"),
}
REJECT_CODES: dict[str, tuple[str, ...]] = {
    "tiktok": ("40001", "40002", "40105"),
    "meta": ("100", "190"),
}
# Body codes that mean success even though a code is present.
SUCCESS_CODES: tuple[str, ...] = ("0", "20001", "OK", "SUCCESS")

# Words accepted in an explicitly mapped `outcome` field, lower-cased.
OUTCOME_SYNONYMS: dict[str, str] = {
    "delivered": "delivered",
    "success": "delivered",
    "succeeded": "delivered",
    "ok": "delivered",
    "sent": "delivered",
    "rate_limited": "rate_limited",
    "ratelimited": "rate_limited",
    "throttled": "rate_limited",
    "rejected": "rejected",
    "invalid": "rejected",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "retrying": "retrying",
    "retry": "retrying",
    "retried": "retrying",
    "dropped": "dropped",
    "discarded": "dropped",
    "aborted": "dropped",
}

# Name fragments used to guess the vendor of a destination the config does not list.
VENDOR_GUESSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tiktok", ("tiktok",)),
    ("meta", ("meta", "facebook", "fb_", "capi")),
    ("google_ads", ("google", "gads")),
    ("webhook", ("webhook", "hook")),
)


def guess_vendor(destination: str) -> str:
    """The vendor a destination name suggests; `generic` when nothing matches."""
    name = destination.lower()
    for vendor, fragments in VENDOR_GUESSES:
        if any(f in name for f in fragments):
            return vendor
    return "generic"


def vendor_sql(dest: str, configured: dict[str, str]) -> str:
    """SQL for the vendor of destination expression `dest`: configured first, else guessed."""
    arms = [f"WHEN {dest} = {sql_str(name)} THEN {sql_str(v)}" for name, v in configured.items()]
    for vendor, fragments in VENDOR_GUESSES:
        cond = " OR ".join(f"contains(lower({dest}), {sql_str(f)})" for f in fragments)
        arms.append(f"WHEN {cond} THEN {sql_str(vendor)}")
    return "CASE " + " ".join(arms) + " ELSE 'generic' END"


def _o(outcome: str) -> str:
    """An outcome constant already of the column's ENUM type (no per-row cast)."""
    return f"{sql_str(outcome)}::{OUTCOME_TYPE}"


def outcome_sql(outcome: str, status: str, code: str, message: str, vendor: str) -> str:
    """SQL classifying one row. Arguments are SQL expressions: `status` SMALLINT, `code` the
    error code trimmed and upper-cased (NULL when empty), the others VARCHAR.

    The common row (no explicit outcome, no error code) takes the short status-only branch;
    vendor tables are only consulted for rows that carry a code.
    """
    synonyms = " ".join(f"WHEN {sql_str(k)} THEN {_o(v)}" for k, v in OUTCOME_SYNONYMS.items())
    by_status = (
        f"CASE WHEN {status} = 429 THEN {_o('rate_limited')} "
        f"WHEN {status} BETWEEN 200 AND 299 THEN {_o('delivered')} "
        f"WHEN {status} BETWEEN 400 AND 499 THEN {_o('rejected')} "
        f"WHEN {status} IS NOT NULL THEN {_o('failed')} "
        f"WHEN {message} IS NOT NULL THEN {_o('failed')} "
        f"ELSE {_o('delivered')} END"
    )
    by_code: list[str] = []
    for vendor_name, codes in RATE_LIMIT_CODES.items():
        by_code.append(
            f"WHEN {vendor} = {sql_str(vendor_name)} AND {code} IN ({sql_list(codes)}) "
            f"THEN {_o('rate_limited')}"
        )
    for vendor_name, codes in REJECT_CODES.items():
        by_code.append(
            f"WHEN {vendor} = {sql_str(vendor_name)} AND {code} IN ({sql_list(codes)}) "
            f"THEN {_o('rejected')}"
        )
    # A 2xx whose body carries a code that is not a success code: the platform took the
    # request but refused the event (TikTok, Google partial failures).
    by_code += [
        f"WHEN {status} = 429 THEN {_o('rate_limited')}",
        f"WHEN {status} BETWEEN 200 AND 299 THEN CASE WHEN {code} IN "
        f"({sql_list(SUCCESS_CODES)}) THEN {_o('delivered')} ELSE {_o('rejected')} END",
        f"WHEN {status} BETWEEN 400 AND 499 THEN {_o('rejected')}",
        f"ELSE {_o('failed')}",
    ]
    known = f"lower(trim({outcome})) IN ({sql_list(OUTCOME_SYNONYMS)})"
    return (
        # The hot path first: no explicit outcome, no code, a 2xx.
        f"CASE WHEN {outcome} IS NULL AND {code} IS NULL AND {status} BETWEEN 200 AND 299 "
        f"THEN {_o('delivered')} "
        f"WHEN {outcome} IS NOT NULL AND {known} THEN CASE lower(trim({outcome})) {synonyms} END "
        f"WHEN {code} IS NULL THEN {by_status} "
        f"ELSE CASE {' '.join(by_code)} END END"
    )
