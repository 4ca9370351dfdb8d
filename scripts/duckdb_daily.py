#!/usr/bin/env python3
"""The same job in DuckDB SQL, for the benchmark: read the OTLP-JSON objects, unnest records,
deduplicate, difference cumulative counters, resolve one member per session (email, else install
id), apply the events-before-metrics rule per (session, day), and compute daily active users,
sessions and spend (UTC). Simplified against cc-analytics: no roster, no resource attributes, no
API-key names, no agents_view exclusion.

    duckdb_daily.py TELEMETRY_DIR [THREADS]
"""
import sys

import duckdb

root = sys.argv[1].rstrip("/")
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
con = duckdb.connect()
con.execute(f"SET threads = {threads}")

ATTR = "list_filter(attrs, lambda a: a->>'key' = '{k}')[1]->'value'"


def s(k):
    return f"({ATTR.format(k=k)}->>'stringValue')"


def n(k):
    v = ATTR.format(k=k)
    return f"coalesce(try_cast({v}->>'doubleValue' AS DOUBLE), try_cast({v}->>'intValue' AS DOUBLE), try_cast({v}->>'stringValue' AS DOUBLE))"


sql = f"""
WITH lines AS (
  SELECT json FROM read_ndjson_objects('{root}/**/*.json*', ignore_errors = true)
),
ev AS (
  SELECT unnest(json_extract(json, '$.resourceLogs[*].scopeLogs[*].logRecords[*]')) AS r
  FROM lines WHERE json_exists(json, '$.resourceLogs')
),
ev2 AS (
  SELECT
    CAST(r->>'timeUnixNano' AS HUGEINT) AS t,
    json_extract(r, '$.attributes[*]') AS attrs,
    replace(r->'body'->>'stringValue', 'claude_code.', '') AS body
  FROM ev
),
events AS (
  SELECT DISTINCT ON (session, name, seq, t)
    t, {s('session.id')} AS session, coalesce({s('event.name')}, body) AS name,
    {n('event.sequence')} AS seq, coalesce({s('user.email')}, {s('user.id')}, '(unattributed)') AS member,
    coalesce({n('cost_usd')}, {n('cost_usd_micros')} / 1e6) AS cost
  FROM ev2
),
mp AS (
  SELECT unnest(json_extract(json, '$.resourceMetrics[*].scopeMetrics[*].metrics[*]')) AS m
  FROM lines WHERE json_exists(json, '$.resourceMetrics')
),
pts AS (
  SELECT m->>'name' AS name, CAST(m->'sum'->>'aggregationTemporality' AS INTEGER) AS temp,
         unnest(json_extract(m, '$.sum.dataPoints[*]')) AS p
  FROM mp WHERE starts_with(m->>'name', 'claude_code.')
),
dedup AS (
  SELECT DISTINCT ON (name, attrs_text, start, t, v)
    name, temp, CAST(p->>'timeUnixNano' AS HUGEINT) AS t, CAST(p->>'startTimeUnixNano' AS HUGEINT) AS start,
    CAST(coalesce(p->>'asDouble', p->>'asInt') AS DOUBLE) AS v, CAST(p->'attributes' AS VARCHAR) AS attrs_text,
    json_extract(p, '$.attributes[*]') AS attrs
  FROM pts
),
metrics AS (
  SELECT name, t, attrs,
    CASE WHEN temp = 2 THEN
      CASE WHEN lag(v) OVER w IS NULL OR v < lag(v) OVER w THEN v ELSE v - lag(v) OVER w END
    ELSE v END AS v
  FROM dedup
  WINDOW w AS (PARTITION BY name, attrs_text, start ORDER BY t)
),
m2 AS (
  SELECT name, t, v, {s('session.id')} AS session,
         coalesce({s('user.email')}, {s('user.id')}, '(unattributed)') AS member
  FROM metrics
),
raw AS (
  SELECT CAST(to_timestamp(CAST(t / 1000000000 AS DOUBLE)) AS DATE) AS day, session, member,
         name = 'api_request' AS is_req, cost, NULL::DOUBLE AS mcost
  FROM events
  UNION ALL
  SELECT CAST(to_timestamp(CAST(t / 1000000000 AS DOUBLE)) AS DATE), session, member, false, NULL,
         CASE WHEN name = 'claude_code.cost.usage' THEN v END
  FROM m2
),
recs AS (
  -- One member per session: an email wins over an install id.
  SELECT day, session, is_req, cost, mcost,
         CASE WHEN session IS NULL THEN member
              ELSE min(CASE WHEN contains(member, '@') THEN '0' ELSE '1' END || member) OVER (PARTITION BY session)[2:]
         END AS member
  FROM raw
),
sd AS (
  SELECT day, session, member, bool_or(is_req) AS has_req,
         sum(CASE WHEN is_req THEN cost END) AS ev_cost, sum(mcost) AS m_cost
  FROM recs GROUP BY day, session, member
)
SELECT day, count(DISTINCT member) AS active_users, count(DISTINCT session) AS sessions,
       sum(CASE WHEN has_req THEN coalesce(ev_cost, 0) ELSE coalesce(m_cost, 0) END) AS spend_usd
FROM sd GROUP BY day ORDER BY day
"""
rows = con.execute(sql).fetchall()
for r in rows:
    print(*r, sep=",")
