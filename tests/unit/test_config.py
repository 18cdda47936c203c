"""Tests for observatory.config: loading, interpolation, validation errors and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory.config import (
    CANONICAL_COLUMNS,
    PAGERDUTY_EVENTS_URL,
    AlertConfig,
    Config,
    ConfigError,
    DestinationConfig,
    default_config,
    load_config,
    parse_duration,
    parse_rate_budget,
)

SHIPPED = Path(__file__).parents[2] / "config.toml"

MINIMAL_SOURCE = """
[[sources]]
name = "fwd"
path = "logs/*.jsonl"
format = "jsonl"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value


# ------------------------------------------------------------------ the shipped config


def test_shipped_config_loads() -> None:
    config = load_config(SHIPPED)
    assert [s.name for s in config.sources] == ["forwarder", "relay", "egress"]
    assert config.sources[0].format == "jsonl"
    assert config.sources[0].fields["error_code"] == "err.code"
    assert config.sources[2].preset == "nginx_upstream"
    assert config.sources[2].map["destination"]["graph.facebook.com"] == "meta_capi"
    assert config.storage.retention == 7 * 86400
    assert config.detection.false_alarm_budget == (1, 604800.0)
    assert config.detection.tick == 1.0
    assert config.alerts[0].kind == "bell"
    assert config.base_dir == SHIPPED.resolve().parent
    assert config.db_path == str(SHIPPED.resolve().parent / "observatory.duckdb")
    assert config.source_glob(config.sources[0]) == str(
        SHIPPED.resolve().parent / "sample_logs" / "forwarder*.jsonl"
    )


def test_default_config() -> None:
    config = default_config()
    assert config.sources == []
    assert config.storage.db == "observatory.duckdb"
    assert config.storage.memory_limit == "256MB"
    assert config.detection.false_alarm_budget == (1, 604800.0)
    assert config.detection.silence_floor == 5.0
    assert config.detection.staleness == 600.0
    assert config.detection.warmup == 180.0
    assert config.detection.warmup_events == 50


def test_minimal_and_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[storage]\ndb = ":memory:"\n' + MINIMAL_SOURCE))
    assert config.db_path == ":memory:"
    assert config.sources[0].path == "logs/*.jsonl"
    assert config.sources[0].resolved_glob(tmp_path) == str(tmp_path / "logs" / "*.jsonl")
    config = load_config(write(tmp_path, '[storage]\ndb = "/abs/x.duckdb"\n'))
    assert config.db_path == "/abs/x.duckdb"


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.sources == [] and config.alerts == []


# ------------------------------------------------------------------ interpolation


def test_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGDIR", "/var/log/fwd")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.test/T/B/x")
    config = load_config(
        write(
            tmp_path,
            """
[[sources]]
name = "fwd"
path = "${LOGDIR}/*.jsonl"
format = "jsonl"
[sources.static]
destination = "literal $${LOGDIR} stays"

[[alerts]]
kind = "webhook"
url = "${SLACK_WEBHOOK_URL}"
""",
        )
    )
    assert config.sources[0].path == "/var/log/fwd/*.jsonl"
    assert config.sources[0].static["destination"] == "literal ${LOGDIR} stays"
    assert config.alerts[0].url_value() == "https://hooks.slack.test/T/B/x"


def test_unset_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    err = load_error(tmp_path, '[[alerts]]\nkind = "webhook"\nurl = "${SLACK_WEBHOOK_URL}"\n')
    assert err.key == "alerts[0].url"
    assert str(err) == "alerts[0].url: environment variable SLACK_WEBHOOK_URL is not set"


def test_bad_env_reference(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL_SOURCE.replace("logs/*", "${not valid}/*"))
    assert err.key == "sources[0].path"
    assert "${NAME}" in err.message


# ------------------------------------------------------------------ mistakes name their key


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        pytest.param(
            MINIMAL_SOURCE.replace('"jsonl"', '"jsn"'),
            "sources[0].format",
            "'jsn' is not one of jsonl, logfmt, regex",
            id="bad-format-literal",
        ),
        pytest.param(
            MINIMAL_SOURCE.replace("format =", "formt ="),
            "sources[0].formt",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            '[[sources]]\npath = "x"\nformat = "jsonl"\n',
            "sources[0].name",
            "required key is missing",
            id="missing-name",
        ),
        pytest.param(
            '[storage]\nretention = "5 minutes"\n',
            "storage.retention",
            "'5 minutes' is not a duration (use e.g. 30s, 5m, 7d)",
            id="bad-duration",
        ),
        pytest.param(
            MINIMAL_SOURCE + '[sources.fields]\ndestnation = "dest"\n',
            "sources[0].fields.destnation",
            "unknown column (valid: " + ", ".join(CANONICAL_COLUMNS) + ")",
            id="bad-fields-key",
        ),
        pytest.param(
            MINIMAL_SOURCE + '[sources.static]\nvendor = "x"\n',
            "sources[0].static.vendor",
            "unknown column",
            id="bad-static-key",
        ),
        pytest.param(
            MINIMAL_SOURCE + '[sources.map.outcom]\n"a" = "b"\n',
            "sources[0].map.outcom",
            "unknown column",
            id="bad-map-key",
        ),
        pytest.param(
            MINIMAL_SOURCE + MINIMAL_SOURCE,
            "sources[1].name",
            "duplicate source name 'fwd'",
            id="duplicate-source",
        ),
        pytest.param(
            '[[destinations]]\nname = "a"\n[[destinations]]\nname = "a"\n',
            "destinations[1].name",
            "duplicate destination name 'a'",
            id="duplicate-destination",
        ),
        pytest.param(
            MINIMAL_SOURCE.replace('"jsonl"', '"regex"'),
            "sources[0].pattern",
            "required when format = 'regex'",
            id="regex-without-pattern",
        ),
        pytest.param(
            MINIMAL_SOURCE.replace('"jsonl"', '"regex"') + "pattern = '(?P<ts>\\S+'\n",
            "sources[0].pattern",
            "invalid regular expression: missing ), unterminated subpattern",
            id="bad-regex",
        ),
        pytest.param(
            MINIMAL_SOURCE.replace('"jsonl"', '"regex"') + "pattern = '(\\S+) (\\d+)'\n",
            "sources[0].pattern",
            "named group",
            id="regex-without-named-group",
        ),
        pytest.param(
            MINIMAL_SOURCE + 'preset = "nginx_upstream"\n',
            "sources[0].preset",
            "only allowed with format = 'regex'",
            id="preset-without-regex",
        ),
        pytest.param(
            MINIMAL_SOURCE.replace('"fwd"', '"has space"'),
            "sources[0].name",
            "'has space' is not a valid name",
            id="bad-source-name",
        ),
        pytest.param(
            '[storage]\nmemory_limit = "lots"\n',
            "storage.memory_limit",
            "'lots' is not a memory size",
            id="bad-memory-limit",
        ),
        pytest.param(
            "[storage]\nthreads = 0\n",
            "storage.threads",
            "must be at least 1",
            id="threads-zero",
        ),
        pytest.param(
            '[detection]\nfalse_alarm_budget = "often"\n',
            "detection.false_alarm_budget",
            "'often' is not a rate budget",
            id="bad-budget",
        ),
        pytest.param(
            '[detection]\ntick = "0s"\n',
            "detection.tick",
            "must be greater than 0",
            id="zero-tick",
        ),
        pytest.param(
            '[detection]\nwarmup_events = "many"\n',
            "detection.warmup_events",
            "expected an integer",
            id="wrong-type",
        ),
        pytest.param(
            '[detection]\nticks = "1s"\n',
            "detection.ticks",
            "unknown key (did you mean 'tick'?)",
            id="unknown-detection-key",
        ),
        pytest.param(
            '[storag]\ndb = "x"\n',
            "storag",
            "unknown key",
            id="unknown-table",
        ),
        pytest.param(
            'base_dir = "/etc"\n',
            "base_dir",
            "unknown key",
            id="base-dir-not-settable",
        ),
        pytest.param(
            '[[alerts]]\nkind = "webhook"\n',
            "alerts[0].url",
            "required for kind = 'webhook'",
            id="webhook-without-url",
        ),
        pytest.param(
            '[[alerts]]\nkind = "pagerduty"\n',
            "alerts[0].routing_key",
            "required for kind = 'pagerduty'",
            id="pagerduty-without-key",
        ),
        pytest.param(
            '[[alerts]]\nkind = "command"\n',
            "alerts[0].command",
            "required for kind = 'command'",
            id="command-without-command",
        ),
        pytest.param(
            '[[alerts]]\nkind = "command"\ncommand = 5\n',
            "alerts[0].command",
            "expected a string or a list of strings",
            id="command-wrong-type",
        ),
        pytest.param(
            '[[alerts]]\nkind = "bell"\nmin_severity = "info"\n',
            "alerts[0].min_severity",
            "'info' is not one of warning, error, critical",
            id="bad-severity",
        ),
        pytest.param(
            '[[destinations]]\nname = "d"\n[[destinations.probes]]\nkind = "http"\n',
            "destinations[0].probes[0].url",
            "required key is missing",
            id="probe-without-url",
        ),
        pytest.param(
            '[[destinations]]\nname = "d"\n[[destinations.probes]]\nkind = "http"\n'
            'url = "https://x.test"\nevery = "soon"\n',
            "destinations[0].probes[0].every",
            "'soon' is not a duration",
            id="probe-bad-every",
        ),
        pytest.param(
            'sources = "x"\n',
            "sources",
            "expected a list",
            id="sources-not-a-list",
        ),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    err = load_error(tmp_path, text)
    assert err.key == key
    assert fragment in err.message
    assert str(err) == f"{key}: {err.message}"
    assert "\n" not in str(err)


def test_toml_syntax_error(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[storage]\ndb = "x"\nretention = \n')
    assert err.key == "config"
    assert "invalid TOML" in err.message
    assert "line 3" in err.message
    assert "column" in err.message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.key == "config"
    assert info.value.message == f"file not found: {missing}"


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.key == "config"


def test_config_error_str() -> None:
    err = ConfigError("storage.retention", "bad\nthing")
    assert str(err) == "storage.retention: bad thing"
    assert err.key == "storage.retention"
    assert err.message == "bad thing"


def test_odd_keys_are_quoted(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL_SOURCE + '[sources.map.destination]\n"a.b" = 3\n')
    assert err.key == 'sources[0].map.destination."a.b"'
    assert err.message == "expected a string"


# ------------------------------------------------------------------ secrets

SECRET = "s3cr3t-token"

SECRET_CONFIG = """
[[destinations]]
name = "tiktok_conversions"
[[destinations.probes]]
kind = "statuspage"
url = "https://status.test/api/v2/summary.json?token=${TOK}"
component = "TikTok"
[destinations.probes.headers]
Authorization = "Bearer ${TOK}"

[[alerts]]
kind = "pagerduty"
routing_key = "${TOK}"
"""


@pytest.fixture
def tok(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TOK", SECRET)
    return SECRET


def test_secrets_are_masked(tmp_path: Path, tok: str) -> None:
    config = load_config(write(tmp_path, SECRET_CONFIG))
    probe = config.destinations[0].probes[0]
    assert probe.header_values() == {"Authorization": f"Bearer {tok}"}
    assert probe.url_value().endswith(tok)
    assert config.alerts[0].routing_key_value() == tok
    assert config.alerts[0].url_value() == PAGERDUTY_EVENTS_URL
    for text in (repr(config), str(config), repr(probe), str(config.alerts[0])):
        assert tok not in text
    assert tok not in config.model_dump_json()


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param(
            'url = "https://status.test',
            'url = "ftp://${TOK}@status.test',
            "destinations[0].probes[0].url",
            id="invalid-url",
        ),
        pytest.param(
            'Authorization = "Bearer ${TOK}"',
            'Authorization = ["Bearer ${TOK}"]',
            "destinations[0].probes[0].headers.Authorization",
            id="invalid-header",
        ),
        pytest.param(
            'component = "TikTok"',
            'component = "TikTok"\nevery = "${TOK}"',
            "destinations[0].probes[0].every",
            id="secret-in-duration",
        ),
        pytest.param(
            'kind = "statuspage"',
            'kind = "${TOK}"',
            "destinations[0].probes[0].kind",
            id="secret-in-literal",
        ),
        pytest.param(
            'routing_key = "${TOK}"',
            'routing_key = "${TOK}"\nurl = "${TOK}"',
            "alerts[0].url",
            id="invalid-alert-url",
        ),
        pytest.param(
            'component = "TikTok"',
            'component = "TikTok"\ntoken = "${TOK}"',
            "destinations[0].probes[0].token",
            id="unknown-key-with-secret",
        ),
    ],
)
def test_secret_never_in_errors(tmp_path: Path, tok: str, old: str, new: str, key: str) -> None:
    assert old in SECRET_CONFIG
    err = load_error(tmp_path, SECRET_CONFIG.replace(old, new))
    assert err.key == key
    assert tok not in str(err)
    assert tok not in repr(err)
    assert tok not in err.message


def test_secret_not_in_direct_validation_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        AlertConfig.model_validate({"kind": "webhook", "url": f"ftp://{SECRET}"})
    assert SECRET not in str(info.value)


# ------------------------------------------------------------------ durations and budgets


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5s", 1.5),
        ("90", 90.0),
        ("0", 0.0),
        (45, 45.0),
        (2.5, 2.5),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "5 minutes", "5x", "s", "1h-5m", "-5s", "-3", -1, "nan", "inf", "1.2.3s"]
)
def test_parse_duration_rejects(value: str | int | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_duration_messages() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")
    with pytest.raises(ValueError, match="negative"):
        parse_duration("-5s")
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


@pytest.mark.parametrize(
    ("value", "budget"),
    [
        ("1/week", (1, 604800.0)),
        ("1/day", (1, 86400.0)),
        ("2/month", (2, 30 * 86400.0)),
        ("1/hour", (1, 3600.0)),
        ("3/7d", (3, 604800.0)),
        ("1 / 12h", (1, 43200.0)),
        ("4/weeks", (4, 604800.0)),
    ],
)
def test_parse_rate_budget(value: str, budget: tuple[int, float]) -> None:
    assert parse_rate_budget(value) == budget


@pytest.mark.parametrize(
    "value", ["week", "1/", "/week", "0/week", "x/week", "1/fortnight", "1/0s"]
)
def test_parse_rate_budget_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_budget(value)


# ------------------------------------------------------------------ vendors


@pytest.mark.parametrize(
    ("name", "vendor"),
    [
        ("tiktok_conversions", "tiktok"),
        ("TikTok-Events", "tiktok"),
        ("meta_capi", "meta"),
        ("facebook_pixel", "meta"),
        ("fb_conversions", "meta"),
        ("capi_gateway", "meta"),
        ("google_ads", "google_ads"),
        ("gads_offline", "google_ads"),
        ("crm_webhook", "webhook"),
        ("zapier_hook", "webhook"),
        ("snowflake", "generic"),
    ],
)
def test_vendor_guess(name: str, vendor: str) -> None:
    assert default_config().vendor_for(name) == vendor


def test_vendor_configured_wins() -> None:
    config = Config(
        destinations=[
            DestinationConfig(name="tiktok_backup", vendor="webhook"),
            DestinationConfig(name="meta_mirror"),  # vendor not set: still guessed
        ]
    )
    assert config.vendor_for("tiktok_backup") == "webhook"
    assert config.vendor_for("meta_mirror") == "meta"
    assert load_config(SHIPPED).vendor_for("crm_webhook") == "webhook"
