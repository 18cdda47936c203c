"""The DuckDB schema: DESIGN's data model, created idempotently on open."""

from __future__ import annotations

OUTCOMES: tuple[str, ...] = (
    "delivered",
    "rate_limited",
    "rejected",
    "failed",
    "retrying",
    "dropped",
)

_OUTCOME_LIST = ", ".join(f"'{o}'" for o in OUTCOMES)

OUTCOME_TYPE = "outcome_t"

FEED_OUTCOMES = "".join(
    f"UNION ALL SELECT ts, destination, '{o}', {o} FROM feed_seconds WHERE {o} > 0\n    "
    for o in OUTCOMES
)

DDL: tuple[str, ...] = (
    f"CREATE TYPE IF NOT EXISTS {OUTCOME_TYPE} AS ENUM ({_OUTCOME_LIST})",
    f"""
    CREATE TABLE IF NOT EXISTS events (
        ts            TIMESTAMPTZ NOT NULL,
        ingested_at   TIMESTAMPTZ NOT NULL,
        source        VARCHAR NOT NULL,
        destination   VARCHAR NOT NULL,
        event_name    VARCHAR,
        message_id    VARCHAR,
        outcome       {OUTCOME_TYPE} NOT NULL,
        http_status   SMALLINT,
        error_code    VARCHAR,
        error_message VARCHAR,
        latency_ms    DOUBLE,
        attempt       SMALLINT,
        rate_limit_used DOUBLE
    )
    """,
    # Columns added since the first release: a database created before them gets them here,
    # at the end of the table, where CREATE puts them too (so positional reads agree).
    # `rate_limit_used`: the rate-limit share (percent) a delivery's response reported.
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS rate_limit_used DOUBLE",
    """
    CREATE TABLE IF NOT EXISTS ingest_offsets (
        file_key    VARCHAR PRIMARY KEY,
        source      VARCHAR NOT NULL,
        path        VARCHAR NOT NULL,
        "offset"    BIGINT NOT NULL,
        line_no     BIGINT NOT NULL,
        head_len    INTEGER NOT NULL,
        head_hash   VARCHAR NOT NULL,
        updated_at  TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS rejects (
        ingested_at TIMESTAMPTZ NOT NULL,
        source      VARCHAR NOT NULL,
        file        VARCHAR NOT NULL,
        line_no     BIGINT NOT NULL,
        reason      VARCHAR NOT NULL,
        line        VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS probes (
        destination VARCHAR NOT NULL,
        probe       VARCHAR NOT NULL,
        ts          TIMESTAMPTZ NOT NULL,
        ok          BOOLEAN NOT NULL,
        http_status SMALLINT,
        latency_ms  DOUBLE,
        status      VARCHAR,
        details     JSON
    )
    """,
    # Times are TIMESTAMPTZ so SQL can join them to events; the model's epoch floats go
    # through to_timestamp()/epoch_us() and come back exact to the microsecond.
    """
    CREATE TABLE IF NOT EXISTS incidents (
        id              VARCHAR PRIMARY KEY,
        destination     VARCHAR NOT NULL,
        detector        VARCHAR NOT NULL,
        state           VARCHAR NOT NULL,
        severity        VARCHAR NOT NULL,
        detectors       VARCHAR[],
        onset           TIMESTAMPTZ,
        detected_at     TIMESTAMPTZ,
        acknowledged_at TIMESTAMPTZ,
        resolved_at     TIMESTAMPTZ,
        summary         VARCHAR,
        impact          JSON,
        evidence        JSON,
        flaps           INTEGER DEFAULT 0,
        historical      BOOLEAN DEFAULT false
    )
    """,
    # Added since: the end of an incident's outage (its last abnormal second); NULL in older
    # databases, whose incidents then read as an outage lasting until resolved.
    "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS outage_end TIMESTAMPTZ",
    # seq keeps the order of entries that share a timestamp.
    """
    CREATE TABLE IF NOT EXISTS incident_timeline (
        incident_id VARCHAR NOT NULL,
        seq         INTEGER NOT NULL,
        ts          TIMESTAMPTZ NOT NULL,
        kind        VARCHAR NOT NULL,
        detail      VARCHAR
    )
    """,
    # Backup webhook (observatory.backup): one row per message id, first receipt wins;
    # `destinations` are those it was expected at when received, `raw` the event as received.
    """
    CREATE TABLE IF NOT EXISTS backup_events (
        message_id   VARCHAR NOT NULL,
        received_at  TIMESTAMPTZ NOT NULL,
        ts           TIMESTAMPTZ,
        destinations VARCHAR[] NOT NULL,
        raw          VARCHAR NOT NULL
    )
    """,
    # How far the receiver's journal file has been folded into backup_events.
    """
    CREATE TABLE IF NOT EXISTS backup_journal (
        path        VARCHAR PRIMARY KEY,
        "offset"    BIGINT NOT NULL,
        updated_at  TIMESTAMPTZ NOT NULL
    )
    """,
    # Feeds (observatory.feeds): per-destination, per-second counts from a platform's metrics
    # or API, where there is no line per delivery.
    """
    CREATE TABLE IF NOT EXISTS feed_seconds (
        ts           TIMESTAMPTZ NOT NULL,
        destination  VARCHAR NOT NULL,
        feed         VARCHAR NOT NULL,
        delivered    BIGINT NOT NULL,
        rate_limited BIGINT NOT NULL,
        rejected     BIGINT NOT NULL,
        failed       BIGINT NOT NULL,
        retrying     BIGINT NOT NULL,
        dropped      BIGINT NOT NULL,
        latency_n    BIGINT NOT NULL,
        latency_sum  DOUBLE NOT NULL
    )
    """,
    # Every outcome with its count, from log lines (one each) and from feeds: what charts,
    # impact counts and the destination screen read, so a feed's destination reads as a log's.
    f"""
    CREATE OR REPLACE VIEW outcomes AS
    SELECT ts, destination, outcome::VARCHAR AS outcome, 1::BIGINT AS n FROM events
    {FEED_OUTCOMES}
    """,
    # Fire drills (observatory.drills): one row per drill, its report as JSON.
    """
    CREATE TABLE IF NOT EXISTS drills (
        id          VARCHAR PRIMARY KEY,
        started_at  TIMESTAMPTZ NOT NULL,
        destination VARCHAR NOT NULL,
        kind        VARCHAR NOT NULL,
        passed      BOOLEAN NOT NULL,
        detect_s    DOUBLE,
        report      VARCHAR NOT NULL
    )
    """,
)
