"""Versioned schema migrations, tracked in SQLite's `PRAGMA user_version`.

Append a new entry to MIGRATIONS to change the schema; never edit a released one.
A file written by a newer opsbot (user_version > len(MIGRATIONS)) is refused.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per span key or metric series.
CREATE TABLE series (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,          -- 'service:operation' or 'metric{labels}'
    kind          TEXT NOT NULL CHECK (kind IN ('span', 'metric')),
    service       TEXT NOT NULL DEFAULT '',
    operation     TEXT NOT NULL DEFAULT '',
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns  INTEGER NOT NULL
);

-- Partial aggregates: one row per series, UTC day and hour. Baselines for
-- hour-of-week, hour-of-day and global buckets are sums of these rows, so the
-- store grows with series x days x 24, never with span count.
CREATE TABLE aggregates (
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    day       INTEGER NOT NULL,                  -- days since 1970-01-01 UTC
    hour      INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,                     -- of ln(ms) for spans, raw for metrics
    sumsq     REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    errors    INTEGER NOT NULL DEFAULT 0,
    hist      BLOB,                              -- sparse fixed-bin histogram
    PRIMARY KEY (series_id, day, hour)
) WITHOUT ROWID;

CREATE TABLE thresholds (
    series_id   INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    bucket_type TEXT NOT NULL,                   -- 'hour_of_week' | 'hour_of_day' | 'global'
    bucket      INTEGER NOT NULL,
    data        TEXT NOT NULL,                   -- JSON: percentiles and severity cut-offs
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket_type, bucket)
);

CREATE TABLE incidents (
    id             INTEGER PRIMARY KEY,
    state          TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    started_ns     INTEGER NOT NULL,
    ended_ns       INTEGER,
    origin_service TEXT,
    origin_key     TEXT,
    peak_severity  INTEGER,
    details        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE anomalies (
    id            INTEGER PRIMARY KEY,
    series_id     INTEGER NOT NULL REFERENCES series(id),
    key           TEXT NOT NULL,
    service       TEXT NOT NULL,
    operation     TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    started_ns    INTEGER NOT NULL,
    updated_ns    INTEGER NOT NULL,
    ended_ns      INTEGER,
    peak_score    REAL NOT NULL,
    peak_severity INTEGER NOT NULL CHECK (peak_severity BETWEEN 1 AND 5),
    percentile    REAL,                           -- percentile that set the severity
    observed      REAL,
    baseline      TEXT NOT NULL DEFAULT '{}',     -- JSON snapshot of the baseline used
    exemplar_trace_ids TEXT NOT NULL DEFAULT '[]',
    incident_id   INTEGER REFERENCES incidents(id),
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX anomalies_by_time ON anomalies (started_ns);
CREATE INDEX anomalies_open ON anomalies (state, key);

CREATE TABLE feedback (
    id           INTEGER PRIMARY KEY,
    anomaly_id   INTEGER NOT NULL REFERENCES anomalies(id) ON DELETE CASCADE,
    verdict      TEXT NOT NULL CHECK (verdict IN ('false_positive', 'confirmed')),
    user_id      TEXT NOT NULL,
    source       TEXT NOT NULL,                   -- reaction | button | agent | cli
    reason       TEXT NOT NULL DEFAULT '',
    created_ns   INTEGER NOT NULL,
    withdrawn_ns INTEGER
);
CREATE INDEX feedback_by_anomaly ON feedback (anomaly_id);

CREATE TABLE slack_messages (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    thread_ts   TEXT,
    anomaly_id  INTEGER REFERENCES anomalies(id),
    incident_id INTEGER REFERENCES incidents(id),
    kind        TEXT NOT NULL,                    -- alert | incident | digest | answer
    created_ns  INTEGER NOT NULL,
    UNIQUE (channel, ts)
);

-- Every outbound Slack call is written here before it is attempted.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    method          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns INTEGER NOT NULL,
    last_error      TEXT,
    result_ts       TEXT,
    created_ns      INTEGER NOT NULL,
    sent_ns         INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ns);

-- Exemplar traces: the slowest few per key and hour, plus every trace of an anomaly.
-- One trace can be an exemplar of several keys (a slow root and its slow child).
CREATE TABLE exemplar_traces (
    series_id   INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    trace_id    TEXT NOT NULL,
    hour_ns     INTEGER NOT NULL,                 -- start of the UTC hour
    duration_ns INTEGER NOT NULL,                 -- of the span that made it an exemplar
    start_ns    INTEGER NOT NULL,
    pinned      INTEGER NOT NULL DEFAULT 0,       -- part of an anomaly: kept longer
    created_ns  INTEGER NOT NULL,
    PRIMARY KEY (series_id, trace_id)
);
CREATE INDEX exemplars_by_key_hour ON exemplar_traces (series_id, hour_ns, duration_ns);
CREATE INDEX exemplars_by_trace ON exemplar_traces (trace_id);

-- Spans of exemplar traces; removed when no exemplar row refers to the trace.
CREATE TABLE exemplar_spans (
    trace_id TEXT NOT NULL,
    span_id  TEXT NOT NULL,
    data     TEXT NOT NULL,                       -- JSON of bot.spans.Span
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;

CREATE TABLE ingest_rejects (
    reason TEXT PRIMARY KEY,
    count  INTEGER NOT NULL
);
"""

# v2: stable text ids for anomalies and incidents (the detector's own ids, so a
# restart upserts instead of duplicating), mutes, and Slack events seen (each
# event is handled once, whatever Slack retries).
_V2 = """
ALTER TABLE anomalies ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX anomalies_uid ON anomalies (uid);
ALTER TABLE incidents ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX incidents_uid ON incidents (uid);
CREATE INDEX anomalies_by_incident ON anomalies (incident_id);

CREATE TABLE mutes (
    id         INTEGER PRIMARY KEY,
    target     TEXT NOT NULL,                     -- 'service:operation' or 'service'
    until_ns   INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    lifted_ns  INTEGER
);
CREATE INDEX mutes_active ON mutes (target, until_ns);

CREATE TABLE slack_events (
    event_id    TEXT PRIMARY KEY,
    received_ns INTEGER NOT NULL
);
"""

# v3: what the detection engine keeps between runs. `score_hist`: per series and
# UTC hour, histograms of window badness (all scored windows, and those that
# passed the minimum-deviation rule), so a severity recalculation and its dry run
# read aggregates, not raw scores. `detector_state`: the engine's trackers, level
# shifts, call graph and unscored spans, saved with the score rows in one
# transaction, so a restart resumes exactly where the last saved step ended.
_V3 = """
CREATE TABLE score_hist (
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    day       INTEGER NOT NULL,                  -- days since 1970-01-01 UTC
    hour      INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    windows   INTEGER NOT NULL,                  -- scored windows in the hour
    hist      BLOB NOT NULL,                     -- sparse histogram of every window's badness
    eligible  BLOB NOT NULL,                     -- ... of windows that passed min deviation
    PRIMARY KEY (series_id, day, hour)
) WITHOUT ROWID;

CREATE TABLE detector_state (
    name       TEXT PRIMARY KEY,                 -- 'engine'
    data       TEXT NOT NULL,                    -- JSON: trackers, shifts, graph, incidents
    pending    BLOB,                             -- spans buffered for windows not closed yet
    updated_ns INTEGER NOT NULL
);
"""

# v4: metric series baselines, written by the detection engine (their only writer).
# `metric_aggregates`: per series, UTC day and hour, a folded `MetricAggregate` in its
# own terms (count, mean and M2 of the transformed value, which merge exactly with
# Chan's formulas; raw min/max; sparse signed-log histogram). Not `aggregates`: its
# sum/sumsq columns lose the spread of a high, stable gauge, it has no transform,
# and its readers decode every row as latency. `metric_state`: per series, where its
# detector stands (clock hour and the raw values of that hour not folded yet, first
# sample, level-shift anchor, newest sample time so a re-fed sample is skipped) and
# its lifecycle and level-shift trackers, so a restart resumes with warm baselines.
_V4 = """
CREATE TABLE metric_aggregates (
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    day       INTEGER NOT NULL,                  -- days since 1970-01-01 UTC
    hour      INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    transform TEXT NOT NULL,                     -- 'identity' | 'log1p' | 'log'
    count     INTEGER NOT NULL,
    mean      REAL NOT NULL,                     -- of the transformed values
    m2        REAL NOT NULL,                     -- squared deviations from mean, summed
    min       REAL NOT NULL,                     -- raw values
    max       REAL NOT NULL,
    hist      BLOB NOT NULL,                     -- sparse signed-log histogram of raw values
    PRIMARY KEY (series_id, day, hour)
) WITHOUT ROWID;

CREATE TABLE metric_state (
    series_id      INTEGER PRIMARY KEY REFERENCES series(id) ON DELETE CASCADE,
    transform      TEXT NOT NULL,
    first_seen_ns  INTEGER,
    anchor_ns      INTEGER,
    last_sample_ns INTEGER NOT NULL,
    clock_hour     INTEGER,                      -- hours since the epoch
    pending        BLOB,                         -- little-endian float64 values of clock_hour
    tracker        TEXT,                         -- JSON of the AnomalyTracker
    shift          TEXT,                         -- JSON of the LevelShiftTracker
    updated_ns     INTEGER NOT NULL
);
"""

# v5: each metric series' novelty scorer (detectors.novelty_stream), saved with its
# detector state so a restart keeps the range of the series' whole history.
_V5 = """
ALTER TABLE metric_state ADD COLUMN novelty BLOB;  -- NoveltyStream.to_bytes()
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
SCHEMA_VERSION = len(MIGRATIONS)
