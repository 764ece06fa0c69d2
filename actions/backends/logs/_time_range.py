"""``parse_time_range``: the NLU's ``time_range`` text ("since 9am", "between 9 and 10
this morning", "the last 2 hours") as a window (start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dateparser

# -- "since 9am" -> (start, end) -------------------------------------------------------------

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                 "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                 "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
                 "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90, "few": 3,
                 "a few": 3, "couple": 2, "a couple": 2, "a couple of": 2, "couple of": 2}
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
                 "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
                 "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
                 "d": 86400, "day": 86400, "days": 86400,
                 "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800}
_NUM = (r"(?P<n>\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS),
                                                  key=len, reverse=True)) + ")")
_UNIT = r"(?P<unit>" + "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True)) + ")"
_LEAD = r"(?:(?:in|over|during|within|for|from)\s+)?(?:the\s+)?"
_LAST = re.compile(rf"^{_LEAD}(?:last|past|previous)\s+(?:{_NUM}\s*)?{_UNIT}$")
_LAST_HALF_HOUR = re.compile(rf"^{_LEAD}(?:(?:last|past|previous)\s+)?half\s+(?:an\s+)?hour$")
_DURATION_ONLY = re.compile(rf"^{_LEAD}{_NUM}\s*{_UNIT}$")
_AGO = re.compile(rf"^{_NUM}\s*{_UNIT}\s+ago$")
_CLOCK = re.compile(r"^(?:(?P<word>noon|midday|midnight)|(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?"
                    r"\s*(?P<ap>am|pm)?)$")
_CLOCK_TEXT = (r"(?:noon|midday|midnight|\d{1,2}(?:[:.]\d{2})?(?:\s*(?:am|pm))?)")
_CLOCK_RANGE = re.compile(rf"^(?:(?:between|from)\s+)?(?P<a>{_CLOCK_TEXT})\s*"
                          rf"(?:-|to|and|until|till|through)\s*(?P<b>{_CLOCK_TEXT})$")
_POINT_RANGE = re.compile(r"^(?:between|from)\s+(?P<a>.+?)\s+(?:to|and|until|till)\s+(?P<b>.+)$")
_SINCE = re.compile(r"^(?:since|after|from|starting(?:\s+at)?)\s+(?P<rest>.+)$")
_AT = re.compile(r"^(?:at|around)\s+(?P<rest>.+)$")
_WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2,
             "wed": 2, "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "friday": 4, "fri": 4,
             "saturday": 5, "sat": 5, "sunday": 6, "sun": 6}
_PARTS = {"morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}
_WEEKDAY_TEXT = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_DAY_TEXT = (rf"(?:the\s+day\s+before\s+yesterday|today|yesterday|tonight|last\s+night|"
             rf"this\s+(?:morning|afternoon|evening)|this\s+week|"
             rf"(?:(?:on|last)\s+)?(?:{_WEEKDAY_TEXT})|(?:on\s+)?\d{{4}}-\d{{2}}-\d{{2}})"
             rf"(?:\s+(?:morning|afternoon|evening|night))?")
_DAY_AT_END = re.compile(rf"^(?:(?P<rest>.*?)[\s,]+)??(?P<day>{_DAY_TEXT})$")
_DAY_AT_START = re.compile(rf"^(?P<day>{_DAY_TEXT})(?:[\s,]+(?P<rest>.*))?$")


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm" or None
    explicit: bool  # a 24-hour reading that needs no guessing (14:00, 09:30, 0:15, noon)


@dataclass(frozen=True)
class _Day:
    day: date
    part: str | None  # morning, afternoon, evening, night
    week: bool = False  # "this week": from Monday

    def span(self) -> tuple[datetime, datetime]:
        if self.week:
            return _local(self.day, 0), _local(self.day + timedelta(days=7), 0)
        if self.part is None:
            return _local(self.day, 0), _local(self.day + timedelta(days=1), 0)
        first, last = _PARTS[self.part]
        return _local(self.day, first), _local(self.day, last)

    def at(self, clock: _Clock) -> datetime:
        hour = _hour_on_day(clock, self.part)
        return _local(self.day, hour, clock.minute)


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    """Wall-clock ``hour:minute`` on ``day`` in the server's zone (hour may pass 24)."""
    naive = datetime(day.year, day.month, day.day) + timedelta(hours=hour, minutes=minute)
    return naive.astimezone().astimezone(UTC)  # a naive astimezone() means local time


def _clock(text: str) -> _Clock | None:
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    word = match.group("word")
    if word:
        return _Clock(0, 0, None, True) if word == "midnight" else _Clock(12, 0, "pm", True)
    hour, minute = int(match.group("h")), int(match.group("m") or 0)
    meridiem = match.group("ap")
    if minute > 59 or hour > 23 or (meridiem and not 1 <= hour <= 12):
        return None
    explicit = meridiem is None and (hour == 0 or hour >= 13 or
                                     (len(match.group("h")) == 2 and hour < 10))
    return _Clock(hour, minute, meridiem, explicit)


def _hour_on_day(clock: _Clock, part: str | None) -> int:
    """The 24-hour reading of ``clock``, guessing am/pm from the part of the day."""
    if clock.meridiem == "am":
        return 0 if clock.hour == 12 else clock.hour
    if clock.meridiem == "pm":
        return clock.hour if clock.hour == 12 else clock.hour + 12
    if clock.explicit or clock.hour == 12:
        return clock.hour
    if part == "morning":
        return clock.hour
    if part == "night" and clock.hour < 6:
        return clock.hour + 24  # "3 last night" is early the next morning
    if part in ("afternoon", "evening", "night"):
        return clock.hour + 12
    return clock.hour if clock.hour >= 7 else clock.hour + 12  # 9 -> 09:00, 3 -> 15:00


def _latest_before(clock: _Clock, now: datetime) -> datetime:
    """The most recent moment not after ``now`` that ``clock`` can mean."""
    today = now.astimezone().date()
    if clock.meridiem or clock.explicit or clock.hour == 12:
        hours = [_hour_on_day(clock, None)]
    else:
        hours = [clock.hour, clock.hour + 12]
    candidates = [_local(day, hour, clock.minute) for day in (today, today - timedelta(days=1))
                  for hour in hours]
    past = [moment for moment in candidates if moment <= now]
    return max(past) if past else min(candidates)


def _after(clock: _Clock, start: datetime, day: _Day | None) -> datetime:
    """The end of a range that starts at ``start``: the first reading of ``clock`` after it."""
    local_day = start.astimezone().date()
    if clock.meridiem or clock.explicit or clock.hour == 12:
        hours = [_hour_on_day(clock, day.part if day else None)]
    else:
        hours = [clock.hour, clock.hour + 12]
    candidates = sorted(_local(d, hour, clock.minute)
                        for d in (local_day, local_day + timedelta(days=1)) for hour in hours)
    return next(moment for moment in candidates if moment > start)


def _day(text: str, now: datetime) -> _Day | None:
    words = text.split()
    part = words[-1] if len(words) > 1 and words[-1] in _PARTS else None
    if part and words[:-1] not in (["last"], ["this"]):
        words = words[:-1]
    phrase = " ".join(words).removeprefix("on ")
    today = now.astimezone().date()
    if phrase == "today":
        return _Day(today, part)
    if phrase == "yesterday":
        return _Day(today - timedelta(days=1), part)
    if phrase == "the day before yesterday":
        return _Day(today - timedelta(days=2), part)
    if phrase == "tonight":
        return _Day(today, "evening")
    if phrase == "last night":
        return _Day(today - timedelta(days=1), "night")
    if phrase.startswith("this ") and phrase[5:] in _PARTS:
        return _Day(today, phrase[5:])
    if phrase == "this week":
        return _Day(today - timedelta(days=today.weekday()), None, week=True)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", phrase):
        try:
            return _Day(date.fromisoformat(phrase), part)
        except ValueError:
            return None
    strict = phrase.startswith("last ")
    weekday = _WEEKDAYS.get(phrase.removeprefix("last "))
    if weekday is None:
        return None
    back = (today.weekday() - weekday) % 7
    if strict and back == 0:
        back = 7
    return _Day(today - timedelta(days=back), part)


def _split_day(text: str, now: datetime) -> tuple[str, _Day | None]:
    """Separate a day phrase ("yesterday", "this morning") from the rest of the text."""
    for pattern in (_DAY_AT_END, _DAY_AT_START):
        match = pattern.match(text)
        if match:
            day = _day(match.group("day"), now)
            if day is not None:
                rest = (match.group("rest") or "").strip()
                return re.sub(r"^on\s+|\s+(?:on|at)$", "", rest), day
    return text, None


def _amount(match: re.Match[str]) -> timedelta:
    raw = (match.group("n") or "1").strip()
    number = _NUMBER_WORDS[raw] if raw in _NUMBER_WORDS else float(raw)
    return timedelta(seconds=number * _UNIT_SECONDS[match.group("unit")])


def _dateparser_point(text: str, now: datetime) -> datetime | None:
    """Anything dateparser reads as one moment ("nov 20 10:00", "2026-11-20T10:00Z")."""
    local_now = now.astimezone()
    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": True,
        # dateparser caches the local zone at first use; the offset now is always right
        "TIMEZONE": local_now.strftime("%z"),
    }
    try:
        parsed = dateparser.parse(text, languages=["en"], settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input
        return None
    if parsed is None:
        return None
    # Re-read the wall-clock time in the local zone, so a date across a DST change is right.
    return parsed.replace(tzinfo=None).astimezone().astimezone(UTC)


def _point(text: str, now: datetime) -> datetime | None:
    """One moment: "9am", "yesterday 17:00", "monday", "2 hours ago", "nov 20 10:00"."""
    rest, day = _split_day(text, now)
    if day is not None and not rest:
        return day.span()[0]
    clock = _clock(re.sub(r"^at\s+", "", rest))
    if clock is not None:
        return day.at(clock) if day is not None else _latest_before(clock, now)
    if day is not None:
        return None
    match = _AGO.match(text)
    if match:
        return now - _amount(match)
    if not re.search(r"\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec", text):
        return None  # dateparser reads too much into plain words
    return _dateparser_point(text, now)


def _clock_range(a: str, b: str, day: _Day | None, now: datetime) -> tuple[datetime, datetime]:
    first, second = _clock(a), _clock(b)
    assert first is not None and second is not None
    if first.meridiem is None and not first.explicit and second.meridiem is not None \
            and first.hour != 12:
        # "9-10am": the am/pm of the end also holds for the start ("11-1pm": 11am).
        same = first.hour % 12 <= second.hour % 12
        meridiem = second.meridiem if same else ("am" if second.meridiem == "pm" else "pm")
        first = _Clock(first.hour, first.minute, meridiem, False)
    start = day.at(first) if day is not None else _latest_before(first, now)
    return start, _after(second, start, day)


def _interpret(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    match = _LAST.match(text) or _DURATION_ONLY.match(text)
    if match:
        return now - _amount(match), now
    if _LAST_HALF_HOUR.match(text):
        return now - timedelta(minutes=30), now
    match = _AGO.match(text)
    if match:
        return now - _amount(match), now
    rest, day = _split_day(text, now)
    match = _CLOCK_RANGE.match(rest)
    if match:
        return _clock_range(match.group("a"), match.group("b"), day, now)
    if day is not None and not rest:
        return day.span()
    match = _POINT_RANGE.match(text)
    if match:
        start, end = _point(match.group("a"), now), _point(match.group("b"), now)
        if start is not None and end is not None:
            return start, end
    match = _SINCE.match(text)
    if match:
        start = _point(match.group("rest"), now)
        return (start, now) if start is not None else None
    match = _AT.match(rest)
    if match:
        clock = _clock(match.group("rest"))
        if clock is not None:  # "at 9am": the hour from then
            start = day.at(clock) if day is not None else _latest_before(clock, now)
            return start, start + timedelta(hours=1)
    start = _point(text, now)
    return (start, now) if start is not None else None


def parse_time_range(text: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window ``text`` means, as aware UTC (start, end), with start < end <= now.

    None or "" is the last hour. Understood: "in the last hour", "last 15 minutes",
    "past 2 days", "in the last 30 mins", "since yesterday", "since 9am", "today",
    "yesterday", "this morning", "between 9 and 10 this morning", "from 14:00 to 15:30",
    "2 hours ago", "at 9am" (that hour), weekdays, and dates dateparser can read. Times
    of day are in the server's local zone (TZ); "9" means 09:00 or 21:00, whichever
    was last (with a day named, 7-11 are mornings and 1-6 afternoons). ValueError with
    a message for the chat otherwise.
    """
    now = datetime.now(UTC) if now is None else now
    now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
    raw = "" if text is None else str(text)
    cleaned = raw.strip().lower()
    cleaned = re.sub(r"[\u2013\u2014]", "-", cleaned)
    cleaned = re.sub(r"\b([ap])\.m\.?", r"\1m", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .,!?;:'\"")
    if not cleaned:
        return now - timedelta(hours=1), now
    window = _interpret(cleaned, now)
    if window is None:
        raise ValueError(f"I can't read '{raw.strip()}' as a time range; try 'last 2 hours' "
                         "or 'since 9am'.")
    start, end = window
    end = min(end, now)
    if start >= now:
        local = now.astimezone()
        raise ValueError(f"'{raw.strip()}' has not started yet (it is {local:%H:%M} here); "
                         "ask about a time that has passed, like 'last 2 hours'.")
    if start >= end:
        raise ValueError(f"'{raw.strip()}' is an empty time range; try 'last 2 hours' or "
                         "'between 9 and 10 this morning'.")
    return start, end
