"""``via``, the response fields and ``[[dependencies]]``: what loads, and the errors that name
the key (a wrong ``via`` name would otherwise be a node that is never probed nor fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory.config import (
    Config,
    ConfigError,
    ResponsePlan,
    dependents,
    load_config,
    response_plan,
)

CHAIN = """
[[destinations]]
name = "tiktok_conversions"
vendor = "tiktok"
via = ["segment", "tiktok_events_api"]
owner = "growth-eng"
runbook = "https://wiki.example.com/runbooks/tiktok"
fallback = "Route TikTok through the backup webhook"
retry_window = "4h"

[[destinations]]
name = "meta_capi"
via = ["segment"]

[[destinations]]
name = "google_ads"

[[dependencies]]
name = "segment"
kind = "cdp"
docs = "https://segment.com/docs/connections/destinations/"
owner = "data-platform"
[[dependencies.probes]]
kind = "statuspage"
url = "https://status.segment.com/api/v2/summary.json"
component = "Destinations"

[[dependencies]]
name = "tiktok_events_api"
kind = "platform_api"
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def test_chain_loads(tmp_path: Path) -> None:
    config = load(tmp_path, CHAIN)
    tiktok = config.destinations[0]
    assert tiktok.via == ["segment", "tiktok_events_api"]
    assert tiktok.retry_window == 4 * 3600
    assert tiktok.runbook == "https://wiki.example.com/runbooks/tiktok"
    segment = config.dependencies[0]
    assert (segment.kind, segment.owner) == ("cdp", "data-platform")
    assert segment.probes[0].component == "Destinations"
    assert dependents(config, "segment") == ["tiktok_conversions", "meta_capi"]
    assert dependents(config, "tiktok_events_api") == ["tiktok_conversions"]


def test_response_plan(tmp_path: Path) -> None:
    config = load(tmp_path, CHAIN)
    plan = response_plan(config, "tiktok_conversions")
    assert plan == ResponsePlan(
        "tiktok_conversions",
        ("segment", "tiktok_events_api"),
        "growth-eng",
        "https://wiki.example.com/runbooks/tiktok",
        "Route TikTok through the backup webhook",
        14400.0,
    )
    assert plan is not None
    assert plan.rows()[0] == ("Fallback", "Route TikTok through the backup webhook")
    assert ("Retry window", "4h") in plan.rows()
    assert ("Depends on", "segment → tiktok_events_api → tiktok_conversions") in plan.rows()
    # Only a chain is still something to say; nothing configured, or not configured: None.
    assert response_plan(config, "meta_capi") is not None
    assert response_plan(config, "google_ads") is None
    assert response_plan(config, "unknown") is None
    assert response_plan(None, "tiktok_conversions") is None


def test_via_names_an_unknown_dependency(tmp_path: Path) -> None:
    exc = error(tmp_path, CHAIN.replace('via = ["segment"]', 'via = ["segmnt"]'))
    assert exc.key == "destinations[1].via[0]"
    assert "'segmnt' is not a configured dependency" in str(exc)
    assert "known: segment, tiktok_events_api" in str(exc)


def test_via_without_any_dependency(tmp_path: Path) -> None:
    exc = error(tmp_path, '[[destinations]]\nname = "a"\nvia = ["cdp"]\n')
    assert exc.key == "destinations[0].via[0]"
    assert "none: add a [[dependencies]] table" in str(exc)


def test_via_names_a_dependency_twice(tmp_path: Path) -> None:
    exc = error(tmp_path, CHAIN.replace('via = ["segment"]', 'via = ["segment", "segment"]'))
    assert exc.key == "destinations[1].via[1]"
    assert "named twice" in str(exc)


def test_duplicate_dependency_name(tmp_path: Path) -> None:
    exc = error(tmp_path, CHAIN + '\n[[dependencies]]\nname = "segment"\nkind = "forwarder"\n')
    assert exc.key == "dependencies[2].name"
    assert "duplicate dependency name 'segment' (already used by dependencies[0]" in str(exc)


def test_dependency_named_like_a_destination(tmp_path: Path) -> None:
    exc = error(tmp_path, CHAIN + '\n[[dependencies]]\nname = "google_ads"\nkind = "cdp"\n')
    assert exc.key == "dependencies[2].name"
    assert "destinations[2]" in str(exc)


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ('[[dependencies]]\nname = "x"\nkind = "crm"\n', "dependencies[0].kind", "is not one of"),
        ('[[dependencies]]\nname = "x"\n', "dependencies[0].kind", "required key is missing"),
        (
            '[[dependencies]]\nname = "x"\nkind = "cdp"\ndocs = "segment.com"\n',
            "dependencies[0].docs",
            "must be an http:// or https:// URL",
        ),
        (
            '[[destinations]]\nname = "a"\nrunbook = "wiki page"\n',
            "destinations[0].runbook",
            "must be an http:// or https:// URL",
        ),
        (
            '[[destinations]]\nname = "a"\nretry_window = "soon"\n',
            "destinations[0].retry_window",
            "is not a duration",
        ),
        ('[[destinations]]\nname = "a"\nfallback = ""\n', "destinations[0].fallback", "empty"),
        (
            '[[dependencies]]\nname = "x"\nkind = "cdp"\nfalback = "y"\n',
            "dependencies[0].falback",
            "did you mean 'fallback'",
        ),
    ],
)
def test_field_errors_name_the_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    exc = error(tmp_path, text)
    assert exc.key == key
    assert says in str(exc)
