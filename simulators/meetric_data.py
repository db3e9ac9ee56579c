"""The Meetric workspace simulator's data: accounts, keys, records, the changes tests make,
and the aggregates (`/insights/trends`, `/insights/summary`) computed from the live records.

`MeetricSimulator` (simulators/meetric.py) serves it over HTTP.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from .base import vendor_instant as _ts
from .sample_text import sample_sentence

DEPARTMENTS = ("sales", "support", "success")
TOPICS = ("pricing", "security", "onboarding", "roadmap", "ценообразование", "导入", "renewal")
ITEM_STATUSES = ("pending", "in_progress", "completed")


@dataclass
class Key:
    accounts: set[str]
    write: bool = True
    denied: frozenset[str] = frozenset()  # path prefixes (after /api/v1) this key's role may not read


@dataclass
class Account:
    id: str
    key: str = ""  # the account's own read-write key
    users: dict[str, dict] = field(default_factory=dict)
    team_managers: dict[str, dict[str, dict]] = field(default_factory=dict)
    department_managers: dict[str, dict[str, dict]] = field(default_factory=dict)
    conversations: dict[str, dict] = field(default_factory=dict)
    insights: dict[str, dict] = field(default_factory=dict)
    action_items: dict[str, dict] = field(default_factory=dict)
    version: int = 0
    cache: dict[str, tuple[int, Any]] = field(default_factory=dict)




def render(record: dict) -> dict:
    """The public form of a stored record: datetimes become strings, `_` fields are hidden.

    `_served` holds values the API sends instead of the stored ones (a malformed record: the
    server still orders and filters by the stored value), `_omit` fields it leaves out."""
    style = record.get("_style", 0)
    out = {k: (_ts(v, style) if isinstance(v, datetime) else v)
           for k, v in record.items() if not k.startswith("_")}
    out.update(record.get("_served") or {})
    for name in record.get("_omit") or ():
        out.pop(name, None)
    return out

class WorkspaceData:
    """Records and their changes; mixed into the simulator, whose rng, lock and clock it uses."""

    accounts: dict[str, Account]
    keys: dict[str, Key]
    processing_share: float

    # ------------------------------------------------------------------ data
    def _hex(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(48):012x}"

    def _random_status(self, when: datetime) -> str:
        """Half of the last two days' conversations are still processing; older ones are stuck
        there only at `processing_share`."""
        roll = self.rng.random()
        share = 0.5 if self.now() - when < timedelta(days=2) else self.processing_share
        if roll < share:
            return "processing"
        return "failed" if roll < share + 0.03 else "processed"

    def add_key(self, account_ids: list[str] | set[str], *, write: bool = True,
                denied: set[str] | frozenset[str] = frozenset()) -> str:
        """A new API key for these accounts (read-write, or read-only with write=False), whose
        role may not read the `denied` path prefixes (e.g. {"/users"})."""
        key = f"mk_{'live' if write else 'ro'}_{self.rng.getrandbits(128):032x}"
        self.keys[key] = Key(set(account_ids), write, frozenset(denied))
        return key

    def add_account(self, *, users: int = 10) -> Account:
        rng = self.rng
        account = Account(self._hex("acc"))
        self.accounts[account.id] = account
        account.key = self.add_key({account.id})
        teams = [self._hex("team") for _ in range(3)]
        departments = [self._hex("dept") for _ in range(2)]
        names = ["Erik Lindström", "María José", "李小龙", "Ольга Петрова", "Yusuf Ali", "Zoë Adams",
                 "אורי כהן", "Jane Doe", "Kofi Mensah", "Aiko Tanaka"]
        now = self.now()
        for i in range(users):
            uid = self._hex("user")
            account.users[uid] = {
                "id": uid, "name": f"{names[i % len(names)]} {i}", "email": f"{uid}@example.com",
                "role": "admin" if i == 0 else "manager" if i % 4 == 1 else "member",
                "team_id": None if i % 7 == 6 else teams[i % len(teams)],
                "department_id": departments[i % len(departments)], "is_active": i % 9 != 8,
                "created_at": now - timedelta(days=400 - i, minutes=rng.randint(0, 600)), "_style": i % 3}
        ids = list(account.users)
        for n, team in enumerate(teams):
            account.team_managers[team] = {}
            for uid in ids[n + 1::5][:2] or ids[:1]:
                self._assign(account.team_managers[team], account.users[uid], now - timedelta(days=90 + n))
        for n, dept in enumerate(departments):
            account.department_managers[dept] = {}
            self._assign(account.department_managers[dept], account.users[ids[n]], now - timedelta(days=200))
        return account

    @staticmethod
    def _assign(managers: dict[str, dict], user: dict, when: datetime) -> None:
        managers[user["id"]] = {"user_id": user["id"], "name": user["name"], "email": user["email"],
                                "assigned_at": when}

    def _touch(self, account: Account) -> None:
        account.version += 1

    def add_conversation(self, account_id: str, *, date: datetime | None = None,
                         status: str = "processed") -> dict:
        """A new conversation (processed at once, or left `processing`/`failed`)."""
        rng = self.rng
        account = self.accounts[account_id]
        with self.lock:
            cid = self._hex("conv")
            when = (date or self.now() - timedelta(hours=1)).replace(microsecond=0)
            people = rng.sample(list(account.users.values()), min(2, len(account.users)))
            n = len(account.conversations)
            conv: dict[str, Any] = {
                "id": cid, "title": f"Call #{n} with {rng.choice(['Acme', 'Globex', 'Initech', 'Umbrella'])}",
                "date": when, "duration": rng.randint(300, 3600), "department": rng.choice(DEPARTMENTS),
                "participants": [{"id": u["id"], "name": u["name"], "email": u["email"]} for u in people]
                + [{"name": "Jane Client", "email": f"jane{n}@client.example"}],
                "status": "processing", "summary": None, "sentiment": None,
                "recording_url": f"https://recordings.example/{cid}.mp4", "transcript_url": None,
                "created_at": when - timedelta(minutes=30), "updated_at": when - timedelta(minutes=30),
                "_style": n % 3}
            if n % 7 == 3:
                conv["crm_deal_id"] = f"deal-{n}"  # a field the docs do not list
            account.conversations[cid] = conv
            if status == "processed":
                lag = timedelta(minutes=rng.randint(5, 60 * 24 * 3))
                done = when + timedelta(seconds=conv["duration"]) + lag
                if done > self.now():  # history: processed a little before now, not all at once
                    done = max(when, self.now() - timedelta(minutes=rng.uniform(1, 120)))
                self._process(account, conv, done)
            elif status == "failed":
                conv["status"], conv["updated_at"] = "failed", min(self.now(), when + timedelta(hours=1))
            self._touch(account)
            return render(conv)

    def _process(self, account: Account, conv: dict, when: datetime) -> None:
        rng = self.rng
        cid = conv["id"]
        users = list(account.users)
        score = round(rng.uniform(-1, 1), 2)
        conv.update(status="processed", summary=f"Summary: {sample_sentence(rng)}",
                    sentiment={"score": score, "label": "positive" if score > 0.3 else
                               "negative" if score < -0.3 else "neutral"},
                    transcript_url=f"https://transcripts.example/{cid}.txt",
                    updated_at=max(when, conv["updated_at"] + timedelta(seconds=1)))
        for k in range(rng.randint(1, 5)):
            kind = rng.choice(("action_item", "topic", "decision"))
            iid = self._hex("insight")
            created = when + timedelta(milliseconds=k)
            insight: dict[str, Any] = {"id": iid, "conversation_id": cid, "type": kind,
                                       "content": sample_sentence(rng), "created_at": created,
                                       "_style": k % 3}
            if kind == "action_item":
                owner = rng.choice(users)
                due = (when + timedelta(days=rng.randint(1, 14))).date().isoformat()
                insight.update(assigned_to=owner, due_date=due, status="pending",
                               confidence=round(rng.uniform(0.5, 1), 2))
                status = rng.choice(ITEM_STATUSES)
                updated = created if status == "pending" else created + timedelta(
                    minutes=rng.randint(1, 60 * 24 * 5))
                if updated > self.now():
                    updated = max(created, self.now() - timedelta(minutes=rng.uniform(1, 120)))
                aid = self._hex("ai")
                account.action_items[aid] = {
                    "id": aid, "conversation_id": cid, "content": insight["content"], "assigned_to": owner,
                    "due_date": due, "status": status, "created_at": created, "updated_at": updated,
                    "_style": k % 3}
            elif kind == "topic":
                insight.update(keywords=rng.sample(TOPICS, rng.randint(1, 3)),
                               relevance_score=round(rng.uniform(0.3, 1), 2))
            else:
                insight["participants"] = rng.sample(users, min(2, len(users)))
            account.insights[iid] = insight

    # ------------------------------------------------------------------ changes tests make
    def _find(self, kind: str, record_id: str) -> tuple[Account, dict]:
        for account in self.accounts.values():
            records = getattr(account, kind)
            if record_id in records:
                return account, records[record_id]
        raise KeyError(record_id)

    def complete(self, conversation_id: str) -> None:
        """The vendor finishes processing a conversation now."""
        with self.lock:
            account, conv = self._find("conversations", conversation_id)
            self._process(account, conv, self.now())
            self._touch(account)

    def set_action_item_status(self, action_item_id: str, status: str) -> None:
        with self.lock:
            account, item = self._find("action_items", action_item_id)
            item.update(status=status, updated_at=max(self.now(), item["updated_at"] + timedelta(milliseconds=1)))
            self._touch(account)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        with self.lock:
            account, conv = self._find("conversations", conversation_id)
            conv.update(title=title, updated_at=self.now())
            self._touch(account)

    def delete_conversation(self, conversation_id: str) -> None:
        """Deletes a conversation with its insights and action items (they answer 404 after)."""
        with self.lock:
            account, _ = self._find("conversations", conversation_id)
            del account.conversations[conversation_id]
            for kind in ("insights", "action_items"):
                records = getattr(account, kind)
                for rid in [r for r, v in records.items() if v["conversation_id"] == conversation_id]:
                    del records[rid]
            self._touch(account)

    def inject(self, account_id: str, kind: str, record: dict) -> None:
        """Stores a raw record as is — a malformed one too — in `kind` (e.g. "conversations")."""
        with self.lock:
            account = self.accounts[account_id]
            records = getattr(account, kind)
            records[record.get("id") or f"raw-{len(records)}"] = record
            self._touch(account)

    def add_bad_records(self, account_id: str | None = None) -> dict[str, str]:
        """One malformed record of each kind in `BAD_RECORD_KINDS`, in fields the source reads;
        returns {kind: id of the record in its table}. This API has no timed transcript
        segments (a conversation has only a `transcript_url`): the two segment kinds are an
        insight without `content` and an action item without `created_at`, its start."""
        account = self.accounts[account_id or self.account_ids[0]]
        now = self.now().replace(microsecond=0)
        with self.lock:
            def conversation(hours: float, served: dict[str, Any]) -> str:
                conv = self.add_conversation(account.id, date=now - timedelta(hours=hours))
                account.conversations[conv["id"]]["_served"] = served
                return conv["id"]

            as_text = conversation(30, {})
            stored = account.conversations[as_text]
            stored["_served"] = {"duration": str(stored["duration"])}  # "1800"
            empty_date = conversation(40, {"date": ""})
            as_json = conversation(50, {})
            stored = account.conversations[as_json]
            stored["_served"] = {"sentiment": orjson.dumps(stored["sentiment"]).decode()}
            changed = conversation(60, {})
            stored = account.conversations[changed]  # a list of people becomes one line of names
            stored["_served"] = {"participants": ", ".join(p["name"] for p in stored["participants"])}
            host = account.conversations[as_text]
            users = list(account.users)
            created = host["updated_at"]
            insight = {"id": self._hex("insight"), "conversation_id": host["id"], "type": "decision",
                       "content": None, "participants": users[:2], "created_at": created}
            account.insights[insight["id"]] = insight
            item = {"id": self._hex("ai"), "conversation_id": host["id"], "content": "Send the specs",
                    "assigned_to": users[0], "due_date": (now + timedelta(days=5)).date().isoformat(),
                    "status": "pending", "created_at": created, "updated_at": now - timedelta(minutes=30),
                    "_omit": ("created_at",)}
            bad_at = {"id": self._hex("ai"), "conversation_id": host["id"], "content": "Book the demo",
                      "assigned_to": users[1 % len(users)], "due_date": None, "status": "in_progress",
                      "created_at": created, "updated_at": now - timedelta(minutes=20),
                      "_served": {"updated_at": "2026-13-45T25:61:00Z"}}
            account.action_items[item["id"]] = item
            account.action_items[bad_at["id"]] = bad_at
            self._touch(account)
        return {"number_as_string": as_text, "bad_timestamp": bad_at["id"], "empty_timestamp": empty_date,
                "object_as_json_string": as_json, "type_change": changed,
                "segment_null_text": insight["id"], "segment_no_start": item["id"]}

    def remove_team_manager(self, team_id: str, user_id: str) -> None:
        with self.lock:
            account = next(a for a in self.accounts.values() if team_id in a.team_managers)
            del account.team_managers[team_id][user_id]

    # ------------------------------------------------------------------ views (tests use these too)
    def _sorted(self, account: Account, kind: str, key: str) -> tuple[list[dict], list[float]]:
        """Records newest first by `key` (then id), and their negated timestamps for bisect."""
        cached = account.cache.get(kind)
        if cached is None or cached[0] != account.version:
            rows = sorted(getattr(account, kind).values(), key=lambda r: (r[key], r.get("id") or ""), reverse=True)
            cached = (account.version, (rows, [-r[key].timestamp() for r in rows]))
            account.cache[kind] = cached
        return cached[1]

    def public(self, account_id: str, kind: str) -> list[dict]:
        """Every record of a kind as the API shows it (conversations, insights, action_items, users)."""
        return [render(r) for r in getattr(self.accounts[account_id], kind).values()]

    def managers(self, account_id: str, kind: str) -> dict[str, list[dict]]:
        """{team or department id: its managers as the API shows them}."""
        return {k: [render(m) for m in v.values()] for k, v in getattr(self.accounts[account_id], kind).items()}

    def _in_days(self, account: Account, start: date, end: date) -> list[dict]:
        rows, keys = self._sorted(account, "conversations", "date")
        lo = bisect.bisect_left(keys, -day_end(end).timestamp())
        hi = bisect.bisect_right(keys, -day_start(start).timestamp())
        return rows[lo:hi]

    def trends(self, account_id: str, start: date, end: date, interval: str = "week") -> list[dict]:
        account = self.accounts[account_id]
        periods: dict[date, list[dict]] = {}
        day = _period(start, interval)
        while day <= end:
            periods[day] = []
            day = _next_period(day, interval)
        items_by_conv = Counter(a["conversation_id"] for a in account.action_items.values())
        for conv in self._in_days(account, start, end):
            periods[_period(conv["date"].date(), interval)].append(conv)
        return [{"period_start": p.isoformat(), "conversations": len(convs), "total_duration": _duration(convs),
                 "avg_sentiment": _sentiment(convs),
                 "action_items": sum(items_by_conv[c["id"]] for c in convs)}
                for p, convs in periods.items()]

    def summary(self, account_id: str, start: date, end: date) -> dict:
        account = self.accounts[account_id]
        convs = self._in_days(account, start, end)
        ids = {c["id"] for c in convs}
        items = Counter(a.get("status") for a in account.action_items.values() if a.get("conversation_id") in ids)
        topics = Counter(k for i in account.insights.values() if i.get("conversation_id") in ids
                         and i.get("type") == "topic" for k in i.get("keywords") or [])
        return {"period_start": start.isoformat(), "period_end": end.isoformat(),
                "total_conversations": len(convs), "total_duration": _duration(convs),
                "avg_sentiment": _sentiment(convs),
                "action_items_open": items["pending"] + items["in_progress"],
                "action_items_completed": items["completed"],
                "top_topics": [t for t, _ in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]}


def day_start(day: date) -> datetime:
    return datetime.combine(max(day, date.min + timedelta(days=1)), datetime.min.time(), UTC)


def day_end(day: date) -> datetime:
    return datetime.combine(min(day, date.max - timedelta(days=1)), datetime.max.time(), UTC)


def _period(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next_period(day: date, interval: str) -> date:
    if interval == "week":
        return day + timedelta(days=7)
    if interval == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


def _duration(convs: list[dict]) -> int:
    return sum(c["duration"] for c in convs if isinstance(c.get("duration"), int))


def _sentiment(convs: list[dict]) -> float | None:
    return _mean([c["sentiment"]["score"] for c in convs if isinstance(c.get("sentiment"), dict)])


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
