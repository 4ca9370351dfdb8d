#!/usr/bin/env python3
"""Independent reference implementation of the contract's definitions (section 3), in plain
Python, used to check cc-analytics' output tables.

    check.py --input DIR --output DIR [--roster CSV] [--timezone TZ] [--role ROLE] [--config TOML]

`--config` names the pipeline file whose `[dimensions.*]` the run used (contract 5.5.1).

Reads the raw telemetry itself (gzip, zstd, plain), computes every table from the contract's
words, then reads the job's Parquet (with pyarrow, and with DuckDB when installed) and CSV for the
role and compares them: schema, row order, every value. Exit 0 when they agree.
"""
import argparse
import csv
import datetime as dt
import gzip
import io
import json
import os
import sys
from collections import defaultdict
from zoneinfo import ZoneInfo

EDIT_TOOLS = {"Edit", "MultiEdit", "Write", "NotebookEdit"}
TELEMETRY_SUFFIXES = (".json", ".jsonl", ".ndjson")


def decompress(data):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def is_telemetry(name):
    for c in (".gz", ".zst"):
        if name.endswith(c):
            name = name[: -len(c)]
    return name.endswith(TELEMETRY_SUFFIXES)


def canon(v):
    if "stringValue" in v:
        return ("s", v["stringValue"])
    if "intValue" in v:
        return ("i", int(v["intValue"]))
    if "doubleValue" in v:
        return ("d", float(v["doubleValue"]))
    if "boolValue" in v:
        return ("b", v["boolValue"])
    return ("r", json.dumps(v, sort_keys=True))


def attrs(lst):
    return {a["key"]: a.get("value", {}) for a in lst or []}


def text(v):
    if v is None:
        return None
    if "stringValue" in v:
        return v["stringValue"] or None
    for k in ("intValue", "doubleValue"):
        if k in v:
            return str(v[k])
    return None


def num(v):
    if v is None:
        return None
    for k in ("doubleValue", "intValue", "stringValue"):
        if k in v:
            return float(v[k])
    return None


def read_records(root):
    """Yields (kind, dedup_key, record dict) in object-key order."""
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            if is_telemetry(n):
                files.append(os.path.join(d, n))
    files.sort(key=lambda p: os.path.relpath(p, root))
    for path in files:
        data = decompress(open(path, "rb").read())
        for line in data.decode().split("\n"):
            if not line.strip():
                continue
            doc = json.loads(line)
            for rl in doc.get("resourceLogs", []):
                res = attrs(rl.get("resource", {}).get("attributes"))
                for sl in rl.get("scopeLogs", []):
                    scope = sl.get("scope", {}).get("name", "")
                    for lr in sl.get("logRecords", []):
                        yield from log_record(lr, res, scope)
            for rm in doc.get("resourceMetrics", []):
                res = attrs(rm.get("resource", {}).get("attributes"))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        s = m.get("sum") or m.get("gauge")
                        if s is None or not m["name"].startswith("claude_code."):
                            continue
                        temp = int(s.get("aggregationTemporality", 1) or 1)
                        for p in s.get("dataPoints", []):
                            yield metric_point(m["name"], temp, p, res)


def merged(rec_attrs, res):
    out = dict(res)
    out.update(rec_attrs)
    return out


def log_record(lr, res, scope):
    a = attrs(lr.get("attributes"))
    body = (lr.get("body") or {}).get("stringValue") or ""
    cc_body = body.startswith("claude_code.")
    if not cc_body and not scope.startswith("com.anthropic.claude_code"):
        return
    name = text(a.get("event.name")) or (body[len("claude_code."):] if cc_body else None)
    if not name:
        return
    t = int(lr.get("timeUnixNano", 0) or 0)
    if t == 0:
        ts = text(a.get("event.timestamp"))
        if ts:
            t = int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)
        else:
            t = int(lr.get("observedTimeUnixNano", 0) or 0)
    m = merged(a, res)
    session = text(m.get("session.id"))
    seq = a.get("event.sequence")
    if seq is not None:
        key = ("E", session, name, int(num(seq)), t)
    else:
        key = ("E", session, name, None, t,
               frozenset((k, canon(v)) for k, v in a.items()),
               frozenset((k, canon(v)) for k, v in res.items()))
    cost = num(m.get("cost_usd"))
    if cost is None and m.get("cost_usd_micros") is not None:
        cost = num(m.get("cost_usd_micros")) / 1e6
    yield {
        "key": key, "kind": "E", "name": name, "time": t, "attrs": m, "session": session,
        "cost": cost, "value": None, "own": a, "res": res,
    }


def metric_point(name, temp, p, res):
    a = attrs(p.get("attributes"))
    m = merged(a, res)
    t = int(p["timeUnixNano"])
    start = int(p.get("startTimeUnixNano", 0) or 0)
    v = p.get("asDouble", p.get("asInt", 0))
    v = float(v)
    series = (name, frozenset((k, canon(x)) for k, x in a.items()),
              frozenset((k, canon(x)) for k, x in res.items()), start)
    return {
        "key": ("M",) + series + (t, v), "kind": "M", "name": name, "time": t, "attrs": m,
        "session": text(m.get("session.id")), "temp": temp, "series": series, "value": v,
        "own": a, "res": res,
    }


def load_roster(path):
    members, alias, extra = [], {}, []
    if not path:
        return members, alias, extra
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            i = len(members)
            members.append((row["member"], row["member_type"], row["role"]))
            extra.append(row)
            alias[row["member"]] = i
            for a in filter(None, (x.strip() for x in row["aliases"].split(";"))):
                alias[a] = i
    return members, alias, extra


def dimension_value(dim, rs, roster_row):
    """5.5.1: the smallest (key position, record before resource, value bytes) among the
    group's records, else the roster column, else (none)."""
    found = []
    for r in rs:
        for pos, key in enumerate(dim.get("attributes", [])):
            for side, src in enumerate((r["own"], r["res"])):
                v = text(src.get(key)) if key in src else None
                if v:
                    found.append((pos, side, v.encode()))
    if found:
        return min(found)[2].decode()
    if roster_row is not None and dim.get("roster"):
        v = (roster_row.get(dim["roster"]) or "").strip()
        if v:
            return v
    return "(none)"


def smallest_tag(rs, key):
    vals = [text(src[key]) for r in rs for src in (r["own"], r["res"]) if key in src]
    vals = [v for v in vals if v]
    return min(vals, key=str.encode) if vals else None


def compute(input_dir, roster_path, tz, dims=()):
    zone = ZoneInfo(tz)
    members, alias, roster_rows = load_roster(roster_path)
    seen, recs = set(), []
    for r in read_records(input_dir):
        if r["key"] in seen:
            continue
        seen.add(r["key"])
        recs.append(r)
    # Increments of cumulative series.
    by_series = defaultdict(list)
    for r in recs:
        if r["kind"] == "M":
            if r["temp"] == 2:
                by_series[r["series"]].append(r)
            else:
                r["inc"] = r["value"]
    for pts in by_series.values():
        pts.sort(key=lambda r: r["time"])
        prev = None
        for r in pts:
            r["inc"] = r["value"] if prev is None or r["value"] < prev else r["value"] - prev
            prev = r["value"]
    # Identity.
    member_ids = {}

    def member_of(kind, value):
        k = (kind, value)
        if k not in member_ids:
            member_ids[k] = len(members) + len(member_ids)
        return member_ids[k]

    # A candidate: (priority, roster index) for a roster alias; (priority, record time, value)
    # for a raw identity, so that between two values of one priority the earliest record wins,
    # then the smaller value (never the order the files are read in).
    def candidate(a, time):
        vals = [text(a.get(k)) for k in ("user.email", "api_key.name", "user.account_uuid", "user.id")]
        for p, v in enumerate(vals):
            if v is not None and v in alias:
                return (p, alias[v], "")
        if vals[0]:
            return (4, time, vals[0])
        if vals[1]:
            return (5, time, vals[1])
        if vals[3]:
            return (6, time, vals[3])
        return (7, 0, "(unattributed)")

    def member_index(cand):
        p, at, value = cand
        if p < 4:
            return at
        return member_of(["user", "api_key", "install", "unattributed"][p - 4], value)

    best, agents = {}, set()
    for r in recs:
        r["cand"] = candidate(r["attrs"], r["time"])
        s = r["session"]
        if s:
            best[s] = min(best.get(s, r["cand"]), r["cand"])
            if r["name"] == "claude_code.session.count" and text(r["attrs"].get("start_type")) == "agents_view":
                agents.add(s)
    for r in recs:
        r["member"] = member_index(best[r["session"]] if r["session"] else r["cand"])
    names = {i: m for i, m in enumerate(members)}
    for (kind, value), i in member_ids.items():
        names[i] = (value, kind, None)
    for r in recs:
        r["date"] = dt.datetime.fromtimestamp(r["time"] / 1e9, dt.timezone.utc).astimezone(zone).date()
    # Per (date, member, session) rules.
    groups = defaultdict(list)
    for r in recs:
        groups[(r["date"], r["member"], r["session"])].append(r)
    daily = defaultdict(lambda: defaultdict(float))  # (date, member) -> measures
    model_rows = defaultdict(lambda: defaultdict(float))
    tool_rows = defaultdict(lambda: [0.0, 0.0])
    member_models = defaultdict(lambda: defaultdict(float))  # (date, member, model)
    member_tools = defaultdict(lambda: [0.0, 0.0])  # (date, member, tool)
    by_dim = defaultdict(lambda: [set(), set(), defaultdict(float)])  # (date, dim, value)
    by_dim_month = defaultdict(lambda: [set(), set(), defaultdict(float)])
    tags = defaultdict(lambda: [[], []])  # (date, member) -> organisation ids, terminal types
    sessions_day, sessions_member_day, sessions_month = defaultdict(set), defaultdict(set), defaultdict(set)
    active = defaultdict(set)
    for (d, mem, s), rs in groups.items():
        active[d].add(mem)
        if s and s not in agents:
            sessions_day[d].add(s)
            sessions_member_day[(d, mem)].add(s)
            sessions_month[(d.replace(day=1), mem)].add(s)
        has_req = any(r["kind"] == "E" and r["name"] == "api_request" for r in rs)
        has_dec = any(r["kind"] == "E" and r["name"] == "tool_decision"
                      and text(r["attrs"].get("tool_name")) in EDIT_TOOLS for r in rs)
        dm = daily[(d, mem)]
        dm["_exists"] = 1
        gm = defaultdict(float)
        for i, key in enumerate(("organization.id", "terminal.type")):
            v = smallest_tag(rs, key)
            if v is not None:
                tags[(d, mem)][i].append(v)
        for r in rs:
            a = r["attrs"]
            model = text(a.get("model")) or "unknown"
            typ = text(a.get("type"))
            if r["kind"] == "E":
                if r["name"] == "api_request":
                    toks = [num(a.get(k)) or 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")]
                    add_spend((dm, gm, model_rows[(d, model)], member_models[(d, mem, model)]), r["cost"] or 0.0, toks, 1)
                elif r["name"] == "tool_decision":
                    tool = text(a.get("tool_name"))
                    if tool in EDIT_TOOLS:
                        add_decision((dm, gm), (tool_rows[(d, tool)], member_tools[(d, mem, tool)]), text(a.get("decision")), 1)
                continue
            n, inc = r["name"], r["inc"]
            def spend_to():
                return (dm, gm, model_rows[(d, model)], member_models[(d, mem, model)])
            if n == "claude_code.cost.usage" and not has_req:
                add_spend(spend_to(), inc, [0, 0, 0, 0], 0)
            elif n == "claude_code.token.usage" and not has_req:
                idx = {"input": 0, "output": 1, "cacheRead": 2, "cacheCreation": 3}.get(typ)
                toks = [0, 0, 0, 0]
                if idx is not None:
                    toks[idx] = inc
                add_spend(spend_to(), 0.0, toks, 0)
            elif n == "claude_code.code_edit_tool.decision" and not has_dec:
                tool = text(a.get("tool_name")) or text(a.get("tool"))
                if tool in EDIT_TOOLS:
                    add_decision((dm, gm), (tool_rows[(d, tool)], member_tools[(d, mem, tool)]), text(a.get("decision")), inc)
            elif n == "claude_code.lines_of_code.count":
                if typ == "added":
                    dm["lines_accepted"] += inc
                    gm["lines_accepted"] += inc
                elif typ == "removed":
                    dm["lines_removed"] += inc
                    gm["lines_removed"] += inc
            elif n == "claude_code.commit.count":
                dm["commits"] += inc
                gm["commits"] += inc
            elif n == "claude_code.pull_request.count":
                dm["pull_requests"] += inc
                gm["pull_requests"] += inc
        roster_row = roster_rows[mem] if mem < len(roster_rows) else None
        for di, dim in enumerate(dims):
            value = dimension_value(dim, rs, roster_row)
            for acc in (by_dim[(d, di, value)], by_dim_month[(d.replace(day=1), di, value)]):
                acc[0].add(mem)
                if s and s not in agents:
                    acc[1].add(s)
                for k, v in gm.items():
                    acc[2][k] += v
    dates = sorted(active)
    per_date = {d: defaultdict(float) for d in dates}
    for (d, mem), m in daily.items():
        for k, v in m.items():
            per_date[d][k] += v
    t = {}
    t["daily_activity"] = [(d, len(active[d]), len(sessions_day[d])) for d in dates]
    t["daily_spend"] = [(d, len(active[d]), per_date[d]["spend"]) for d in dates]
    t["daily_spend_by_model"] = [
        (d, m, round(v["requests"]), v["spend"], round(v["in"]), round(v["out"]), round(v["cr"]), round(v["cc"]))
        for (d, m), v in sorted(model_rows.items(), key=lambda kv: (kv[0][0], kv[0][1].encode()))
    ]
    rate = []
    for d in dates:
        tools = sorted((tl for (dd, tl) in tool_rows if dd == d), key=str.encode)
        for tl in tools:
            a, r = tool_rows[(d, tl)]
            if a + r > 0:
                rate.append((d, tl, round(a), round(r), a / (a + r)))
        a, r = per_date[d]["accepted"], per_date[d]["rejected"]
        rate.append((d, "all", round(a), round(r), a / (a + r) if a + r > 0 else None))
    t["daily_accept_rate"] = rate
    t["daily_lines"] = [(d, round(per_date[d]["lines_accepted"]), round(per_date[d]["lines_removed"])) for d in dates]
    md = []
    for (d, mem), m in daily.items():
        name, kind, role = names[mem]
        md.append((d, name, kind, role, len(sessions_member_day[(d, mem)]), round(m["lines_accepted"]),
                   round(m["lines_removed"]), round(m["accepted"]), round(m["rejected"]), round(m["commits"]),
                   round(m["pull_requests"]), round(m["requests"]), m["spend"], round(m["in"]), round(m["out"]),
                   round(m["cr"]), round(m["cc"])))
    md.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode()))
    t["member_daily"] = md
    monthly = defaultdict(lambda: [0.0, 0.0, set()])
    for (d, mem), m in daily.items():
        e = monthly[(d.replace(day=1), mem)]
        e[0] += m["spend"]
        e[1] += m["lines_accepted"]
        e[2].add(d)
    for month in {d.replace(day=1) for d in dates}:
        for i in range(len(members)):
            monthly[(month, i)]
    mm = []
    for (month, mem), (sp, la, days) in monthly.items():
        name, kind, role = names[mem]
        mm.append((month, name, kind, role, sp, round(la), len(sessions_month[(month, mem)]), len(days)))
    mm.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode()))
    t["member_monthly"] = mm

    def rate_of(a, r):
        return a / (a + r) if a + r > 0 else None

    bd = []
    for (d, di, value), (mems, sess, m) in by_dim.items():
        bd.append((d, dims[di]["name"], value, len(mems), len(sess), m["spend"], round(m["requests"]),
                   round(m["lines_accepted"]), round(m["lines_removed"]), round(m["accepted"]), round(m["rejected"]),
                   rate_of(m["accepted"], m["rejected"]), round(m["commits"]), round(m["pull_requests"])))
    bd.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode()))
    t["daily_by_dimension"] = bd
    bm = []
    for (month, di, value), (mems, sess, m) in by_dim_month.items():
        bm.append((month, dims[di]["name"], value, len(mems), len(sess), m["spend"], round(m["lines_accepted"]),
                   round(m["accepted"]), round(m["rejected"]), rate_of(m["accepted"], m["rejected"])))
    bm.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode()))
    t["monthly_by_dimension"] = bm
    bt = []
    for (d, mem, tool), (a, r) in member_tools.items():
        if a + r > 0:
            name, kind, _ = names[mem]
            bt.append((d, name, kind, tool, round(a), round(r)))
    bt.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode(), r[3].encode()))
    t["member_daily_by_tool"] = bt
    bmod = []
    for (d, mem, model), v in member_models.items():
        name, kind, _ = names[mem]
        bmod.append((d, name, kind, model, round(v["requests"]), v["spend"], round(v["in"]), round(v["out"]),
                     round(v["cr"]), round(v["cc"])))
    bmod.sort(key=lambda r: (r[0], r[1].encode(), r[2].encode(), r[3].encode()))
    t["member_daily_by_model"] = bmod
    # 5.5.3 adoption, from every date (the job's stored dates are the dates with records).
    first = {}
    for d in dates:
        for mem in active[d]:
            first.setdefault(mem, d)
    has_roster = bool(roster_path)
    ad = []
    for d in dates:
        def within(n):
            return set().union(*(active[x] for x in dates if d - dt.timedelta(days=n) < x <= d))
        w28 = within(28)
        ad.append((d, len(active[d]), len(within(7)), len(w28), sum(1 for f in first.values() if f == d),
                   len(members) if has_roster else None,
                   sum(1 for m in w28 if m < len(members)) if has_roster else None))
    t["daily_adoption"] = ad
    last = dates[-1]
    mrows = []
    for mem, (name, kind, role) in names.items():
        days_active = [d for d in dates if mem in active[d]]
        recent = [d for d in days_active if last - dt.timedelta(days=28) < d]
        mrows.append((name, kind, role, days_active[0] if days_active else None,
                      days_active[-1] if days_active else None, len(recent),
                      sum(daily[(d, mem)]["spend"] for d in recent), mem < len(members)))
    mrows.sort(key=lambda r: (r[0].encode(), r[1].encode()))
    t["members"] = mrows
    # 5.6: the export's elements per date, unpseudonymised: (name, kind) -> element facts.
    export = defaultdict(dict)
    for (d, mem), m in daily.items():
        name, kind, _ = names[mem]
        org = tags[(d, mem)][0]
        term = tags[(d, mem)][1]
        export[d][(name, kind)] = {
            "num_sessions": len(sessions_member_day[(d, mem)]),
            "added": round(m["lines_accepted"]), "removed": round(m["lines_removed"]),
            "commits": round(m["commits"]), "pull_requests": round(m["pull_requests"]),
            "tools": {tl: tuple(round(x) for x in member_tools.get((d, mem, tl), (0, 0)))
                      for tl in EDIT_TOOLS},
            "models": sorted(((model, v["spend"] * 100, round(v["in"]), round(v["out"]), round(v["cr"]), round(v["cc"]))
                              for (dd, mm_, model), v in member_models.items() if dd == d and mm_ == mem),
                             key=lambda x: x[0].encode()),
            "organization_id": min(org, key=str.encode) if org else None,
            "terminal_type": min(term, key=str.encode) if term else None,
        }
    t["_export"] = export
    return t


def add_spend(accs, cost, toks, requests):
    for acc in accs:
        acc["spend"] += cost
        acc["requests"] += requests
        for k, v in zip(("in", "out", "cr", "cc"), toks):
            acc[k] += v


def add_decision(accs, tool_accs, decision, n):
    i = {"accept": 0, "reject": 1}.get(decision)
    if i is None:
        return
    for acc in accs:
        acc["accepted" if i == 0 else "rejected"] += n
    for tr in tool_accs:
        tr[i] += n


TOOL_KEYS = {"Edit": "edit_tool", "MultiEdit": "multi_edit_tool", "Write": "write_tool",
             "NotebookEdit": "notebook_edit_tool"}
ACTORS = {"user": ("user_actor", "email_address"), "api_key": ("api_actor", "api_key_name"),
          "install": ("install_actor", "install_id"), "unattributed": ("unattributed_actor", None)}


def check_export(expected, out_dir, role, tz):
    """Every export file of the role against the reference, for the dates it holds."""
    folder = os.path.join(out_dir, "reports", role, "claude_code_usage")
    if not os.path.isdir(folder):
        print("claude_code_usage: no export folder")
        return 1
    errors, files = 0, sorted(os.listdir(folder))
    zone = ZoneInfo(tz)
    for f in files:
        d = dt.date.fromisoformat(f[:-len(".json")])
        doc = json.load(open(os.path.join(folder, f)))
        midnight = dt.datetime.combine(d, dt.time(0), zone)
        want_date = midnight.strftime("%Y-%m-%dT%H:%M:%S") + (
            "Z" if tz == "UTC" else midnight.isoformat()[19:])
        exp = expected["_export"][d]
        got = {}
        for el in doc["data"]:
            actor = el["actor"]
            kind = next(k for k, (t, _) in ACTORS.items() if t == actor["type"])
            field = ACTORS[kind][1]
            name = actor[field] if field else "(unattributed)"
            got[(name, kind)] = el
            if el["date"] != want_date:
                print(f"{f}: date {el['date']} != {want_date}")
                errors += 1
        if sorted(got) != sorted(exp):
            print(f"{f}: members {sorted(got)[:5]} != {sorted(exp)[:5]}")
            errors += 1
            continue
        names = [(next(v for k, v in el["actor"].items() if k != "type") if len(el["actor"]) > 1 else "(unattributed)")
                 for el in doc["data"]]
        if names != sorted(names, key=str.encode) and len(set(names)) == len(names):
            print(f"{f}: elements not sorted by member")
            errors += 1
        for key, e in exp.items():
            el = got[key]
            cm = el["core_metrics"]
            pairs = [(cm["num_sessions"], e["num_sessions"]), (cm["lines_of_code"]["added"], e["added"]),
                     (cm["lines_of_code"]["removed"], e["removed"]), (cm["commits_by_claude_code"], e["commits"]),
                     (cm["pull_requests_by_claude_code"], e["pull_requests"]),
                     (el["organization_id"], e["organization_id"]), (el["terminal_type"], e["terminal_type"]),
                     (el["customer_type"], None)]
            for tl, k in TOOL_KEYS.items():
                pairs.append(((el["tool_actions"][k]["accepted"], el["tool_actions"][k]["rejected"]), e["tools"][tl]))
            models = [(m["model"], m["estimated_cost"]["amount"], m["tokens"]["input"], m["tokens"]["output"],
                       m["tokens"]["cache_read"], m["tokens"]["cache_creation"]) for m in el["model_breakdown"]]
            if len(models) != len(e["models"]) or not all(
                    all(same(x, y) for x, y in zip(a, b)) for a, b in zip(models, e["models"])):
                print(f"{f} {key}: models {models} != {e['models']}")
                errors += 1
            for g, w in pairs:
                if g != w:
                    print(f"{f} {key}: {g} != {w}")
                    errors += 1
                    break
    print(f"claude_code_usage: {len(files)} days checked")
    return errors


SCHEMAS = {
    "daily_activity": [("date", "date32[day]"), ("active_users", "int64"), ("sessions", "int64")],
    "daily_spend": [("date", "date32[day]"), ("active_users", "int64"), ("spend_usd", "double")],
    "daily_spend_by_model": [("date", "date32[day]"), ("model", "string"), ("requests", "int64"), ("spend_usd", "double"),
                             ("input_tokens", "int64"), ("output_tokens", "int64"), ("cache_read_tokens", "int64"),
                             ("cache_creation_tokens", "int64")],
    "daily_accept_rate": [("date", "date32[day]"), ("tool", "string"), ("accepted", "int64"), ("rejected", "int64"),
                          ("accept_rate", "double")],
    "daily_lines": [("date", "date32[day]"), ("lines_accepted", "int64"), ("lines_removed", "int64")],
    "member_daily": [("date", "date32[day]"), ("member", "string"), ("member_type", "string"), ("role", "string")]
    + [(c, "int64") for c in ("sessions", "lines_accepted", "lines_removed", "accepted", "rejected", "commits",
                              "pull_requests", "requests")]
    + [("spend_usd", "double")]
    + [(c, "int64") for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")],
    "member_monthly": [("month", "date32[day]"), ("member", "string"), ("member_type", "string"), ("role", "string"),
                       ("spend_usd", "double"), ("lines_accepted", "int64"), ("sessions", "int64"),
                       ("active_days", "int64")],
    "daily_by_dimension": [("date", "date32[day]"), ("dimension", "string"), ("value", "string"),
                           ("active_users", "int64"), ("sessions", "int64"), ("spend_usd", "double"),
                           ("requests", "int64"), ("lines_accepted", "int64"), ("lines_removed", "int64"),
                           ("accepted", "int64"), ("rejected", "int64"), ("accept_rate", "double"),
                           ("commits", "int64"), ("pull_requests", "int64")],
    "monthly_by_dimension": [("month", "date32[day]"), ("dimension", "string"), ("value", "string"),
                             ("active_users", "int64"), ("sessions", "int64"), ("spend_usd", "double"),
                             ("lines_accepted", "int64"), ("accepted", "int64"), ("rejected", "int64"),
                             ("accept_rate", "double")],
    "member_daily_by_tool": [("date", "date32[day]"), ("member", "string"), ("member_type", "string"),
                             ("tool", "string"), ("accepted", "int64"), ("rejected", "int64")],
    "member_daily_by_model": [("date", "date32[day]"), ("member", "string"), ("member_type", "string"),
                              ("model", "string"), ("requests", "int64"), ("spend_usd", "double"),
                              ("input_tokens", "int64"), ("output_tokens", "int64"), ("cache_read_tokens", "int64"),
                              ("cache_creation_tokens", "int64")],
    "daily_adoption": [("date", "date32[day]"), ("active_users", "int64"), ("active_users_7d", "int64"),
                       ("active_users_28d", "int64"), ("new_users", "int64"), ("roster_members", "int64"),
                       ("roster_active_28d", "int64")],
    "members": [("member", "string"), ("member_type", "string"), ("role", "string"), ("first_active", "date32[day]"),
                ("last_active", "date32[day]"), ("active_days_28d", "int64"), ("spend_usd_28d", "double"),
                ("in_roster", "bool")],
}


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--roster")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--role", default="admin")
    ap.add_argument("--config")
    args = ap.parse_args()
    import pyarrow.parquet as pq

    dims = []
    if args.config:
        import tomllib

        with open(args.config, "rb") as f:
            conf = tomllib.load(f)
        dims = [dict(v, name=k) for k, v in sorted(conf.get("dimensions", {}).items(), key=lambda kv: kv[0].encode())]
    expected = compute(args.input, args.roster, args.timezone, dims)
    errors = check_export(expected, args.output, args.role, args.timezone)
    for table, cols in SCHEMAS.items():
        path = os.path.join(args.output, "reports", args.role, table + ".parquet")
        got = pq.read_table(path)
        schema = [(f.name, str(f.type)) for f in got.schema]
        if schema != cols:
            print(f"{table}: schema {schema} != {cols}")
            errors += 1
            continue
        rows = [tuple(r[c] for c, _ in cols) for r in got.to_pylist()]
        exp = expected[table]
        if len(rows) != len(exp):
            print(f"{table}: {len(rows)} rows, expected {len(exp)}")
            errors += 1
        for i, (g, e) in enumerate(zip(rows, exp)):
            if len(g) != len(e) or not all(same(x, y) for x, y in zip(g, e)):
                print(f"{table} row {i}: got {g}\n{' ' * len(table)}   expected {e}")
                errors += 1
                break
        with open(path[: -len(".parquet")] + ".csv", newline="") as f:
            csv_rows = list(csv.reader(f))
        if csv_rows[0] != [c for c, _ in cols] or len(csv_rows) - 1 != len(rows):
            print(f"{table}: CSV header or row count differs")
            errors += 1
        try:
            import duckdb

            n = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
            if n != len(rows):
                print(f"{table}: DuckDB reads {n} rows")
                errors += 1
        except ImportError:
            pass
        print(f"{table}: {len(rows)} rows checked")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
