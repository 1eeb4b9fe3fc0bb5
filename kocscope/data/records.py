"""The post record: what one input row must hold to be scored (labels.md section 4).

Validation lives here, once, so every entry point (files, stdin, Hugging Face
datasets, the Python API) accepts and rejects exactly the same rows, and every
rejection names the file, line and field the user has to fix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from kocscope.data.text import normalize

Number = int | float

NUMERIC_FIELDS = ("followers", "likes", "comments", "collects", "shares")
STRING_FIELDS = ("title", "platform", "lang", "url")
ID_FIELDS = ("id", "author_id")
OPTIONAL_FIELDS = ("author_id", "title", "platform", "lang", "created_at", "url", *NUMERIC_FIELDS)
KNOWN_FIELDS = ("id", "text", *OPTIONAL_FIELDS)
ID_PREFIX = "auto-"

_UNSET: Any = object()
_GOT_MAX = 60


def _show(value: Any) -> str:
    """repr of an offending value, cut short so one bad cell cannot flood a log."""
    if isinstance(value, str) and len(value) > _GOT_MAX:
        return repr(value[: _GOT_MAX - 3] + "...")
    text = repr(value)
    return text if len(text) <= _GOT_MAX else text[: _GOT_MAX - 3] + "..."


class RecordError(ValueError):
    """A row (or a whole input) that cannot be read as posts.

    ``str(err)`` reads like ``posts.csv, line 12, field 'followers': must be a
    non-negative number, got '-3'``. ``reason`` is kept free of the offending
    value so that rejections group by cause (``key``); the value goes in ``got``,
    parser messages in ``detail`` and what to do in ``hint``. ``unit`` is
    ``"row"`` where the input has no lines (Parquet, datasets).
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        got: Any = _UNSET,
        detail: str | None = None,
        hint: str | None = None,
        unit: str = "line",
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.field = field
        self.got = got
        self.detail = detail
        self.hint = hint
        self.unit = unit
        super().__init__(self.message)

    @property
    def has_got(self) -> bool:
        return self.got is not _UNSET

    @property
    def key(self) -> str:
        """The cause without location or value: what rejection counts group by."""
        return f"field '{self.field}': {self.reason}" if self.field else self.reason

    @property
    def explanation(self) -> str:
        """Reason with the offending value and details, without the location."""
        text = self.reason
        if self.has_got:
            text += f", got {_show(self.got)}"
        if self.detail:
            text += f" ({self.detail})"
        if self.hint:
            text += f"; {self.hint}"
        return text

    @property
    def message(self) -> str:
        where = [
            part
            for part in (self.source, f"{self.unit} {self.line}" if self.line else None)
            if part
        ]
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.explanation}" if where else self.explanation

    def located(self, source: str | None, line: int | None, unit: str = "line") -> RecordError:
        """The same error placed in a file (rows are validated before they know their place)."""
        return type(self)(
            self.reason,
            source=source,
            line=line,
            field=self.field,
            got=self.got,
            detail=self.detail,
            hint=self.hint,
            unit=unit,
        )


class SchemaError(RecordError):
    """The input's columns do not fit the options (a mapped column is absent,
    duplicate header names): every row would fail, so it is raised even under
    ``on_error="skip"``."""


# -- field parsers ------------------------------------------------------------
# Counts as platforms and spreadsheets print them: 1200, 1,200, 1.2万, 3.4w, 5k, 10w+
_COUNT_RE = re.compile(
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*(?P<unit>[万wW千kK亿]?)\+?"
)
_UNITS = {
    "": 1,
    "万": 10_000,
    "w": 10_000,
    "W": 10_000,
    "千": 1_000,
    "k": 1_000,
    "K": 1_000,
    "亿": 100_000_000,
}
_NEGATIVE = "must be a non-negative number"
_MAX_COUNT = Decimal(10) ** 15


def parse_count(value: Any, name: str) -> Number | None:
    """A non-negative count from JSON numbers or CSV strings; None when absent.

    Strings may carry thousands separators and the 万/w/k units Chinese
    platforms print. Integral values come back as int so outputs read 1200,
    not 1200.0.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(_NEGATIVE, field=name, got=value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = _COUNT_RE.fullmatch(text)
        try:
            number = (
                Decimal(match["num"].replace(",", "")) * _UNITS[match["unit"]]
                if match
                else Decimal(text)
            )
        except InvalidOperation:
            raise RecordError(_NEGATIVE, field=name, got=value) from None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, numbers.Integral):  # numpy integers too
        number = Decimal(int(value))
    elif isinstance(value, numbers.Real):
        number = Decimal(float(value))
    else:
        raise RecordError(_NEGATIVE, field=name, got=value)
    if not number.is_finite() or number < 0:
        raise RecordError(_NEGATIVE, field=name, got=value)
    if number > _MAX_COUNT:  # also keeps "1e999999999" from becoming a billion-digit int
        raise RecordError("is implausibly large (over 10^15)", field=name, got=value)
    return int(number) if number == number.to_integral_value() else float(number)


def _parse_string(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError("must be a string", field=name, got=value)
    return value.strip() or None


def _parse_id(value: Any, name: str) -> str | None:
    """Ids may be numbers (platform user ids usually are); they are kept as strings."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if value is None or isinstance(value, str):
        return _parse_string(value, name)
    raise RecordError("must be a string or an integer", field=name, got=value)


# Dates as exports write them: ISO 8601, year first with unpadded month and day
# (2025/3/5, 2025-3-5 9:30), or 2025年3月5日 (optionally followed by a time).
_YEAR_FIRST_RE = re.compile(
    r"(?P<y>\d{4})"
    r"(?:(?P<sep>[-/])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})|年(?P<cm>\d{1,2})月(?P<cd>\d{1,2})[日号]?)"
    r"(?!\d)(?P<time>.*)",
    re.DOTALL,
)
_UNPADDED_HOUR_RE = re.compile(r"^(\d)(?=:)")  # 2025/3/5 9:30, as spreadsheets write it
_YEAR_LAST_RE = re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}(?!\d)")
_TIMESTAMP_TYPE = "must be a date-time string or a Unix time in seconds"
_TIMESTAMP_HINT = "write it like 2024-05-01T12:00:00Z, 2024/5/1 12:00, 2024年5月1日 or Unix seconds"


def parse_timestamp(value: Any, name: str | None = None) -> float | None:
    """Seconds since the epoch (UTC) of a ``created_at``-like value; None when empty.

    The one reader of post dates, so every command accepts the same ones: the
    formats above, epoch seconds or milliseconds (numbers above 1e11), and
    datetime/date objects; naive times are UTC. ``03/05/2025`` is refused:
    exports disagree on whether it is March or May. Raises RecordError
    (a ValueError) naming ``name`` as the field.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):  # Parquet/pandas nulls
            return None
        if not math.isfinite(number):
            raise RecordError(_TIMESTAMP_TYPE, field=name, got=value)
        return number / 1000.0 if abs(number) > 1e11 else number
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)  # epoch seconds written as text
        except ValueError:
            moment = _parse_date_text(text, name)
        else:
            return parse_timestamp(number, name)
    else:
        raise RecordError(_TIMESTAMP_TYPE, field=name, got=value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


def _parse_date_text(text: str, name: str | None) -> _dt.datetime:
    if _YEAR_LAST_RE.match(text):
        raise RecordError(
            "is ambiguous (day/month or month/day?)",
            field=name,
            got=text,
            hint="write the year first, like 2025-03-05",
        )
    iso = text
    match = _YEAR_FIRST_RE.fullmatch(text)
    if match:
        month, day = (match["m"], match["d"]) if match["sep"] else (match["cm"], match["cd"])
        time = match["time"].strip()
        time = _UNPADDED_HOUR_RE.sub(r"0\1", time[1:] if time[:1] in ("T", "t") else time)
        iso = f"{int(match['y']):04d}-{int(month):02d}-{int(day):02d}" + (f"T{time}" if time else "")
    try:
        return _dt.datetime.fromisoformat(iso)
    except ValueError as exc:
        detail = str(exc) if match else None  # the date part read; say what is off in it
        raise RecordError("is not a date", field=name, got=text, detail=detail, hint=_TIMESTAMP_HINT) from None


def _parse_created_at(value: Any) -> str | Number | None:
    """The value as given once ``parse_timestamp`` can read it (so ``kocs`` and ``report``
    accept every post that ``score`` did): a string, Unix seconds, or a date/datetime
    (Parquet timestamp columns), which becomes an ISO 8601 string."""
    if isinstance(value, str):
        value = value.strip() or None
    parse_timestamp(value, "created_at")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, numbers.Real):
        return parse_count(value, "created_at")
    return value


def make_post_id(author_id: str | None, text: str) -> str:
    """Stable id for a post that has none: ``auto-`` + 16 hex chars of
    sha256(author_id + U+001F + normalized text).

    The same post by the same author gets the same id in every run, so scores
    can be joined back; exact duplicates share an id on purpose.
    """
    digest = hashlib.sha256(
        f"{author_id or ''}\x1f{text}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    return ID_PREFIX + digest[:16]


@dataclass(frozen=True)
class Post:
    """One validated post. Build it with ``Post.from_dict``, which validates;
    the constructor trusts its arguments.

    ``text`` is normalized (see ``kocscope.data.text.normalize``) because every
    model reads that form; ``original_text`` keeps what the user wrote for
    output (None when read with ``keep_original=False``). Counts are int or
    float. ``extra`` holds every other input field, untouched, in input order.
    """

    text: str
    id: str
    author_id: str | None = None
    title: str | None = None
    platform: str | None = None
    lang: str | None = None
    created_at: str | Number | None = None
    url: str | None = None
    followers: Number | None = None
    likes: Number | None = None
    comments: Number | None = None
    collects: Number | None = None
    shares: Number | None = None
    original_text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], *, keep_original: bool = True) -> Post:
        """Validate one row that already uses kocscope's field names.

        Raises RecordError naming the field; the reader adds file and line.
        Empty strings count as absent, since CSV cannot tell the two apart.
        """
        raw_text = row.get("text")
        if raw_text is None:
            raise RecordError(
                "is missing", field="text", detail=f"fields: {', '.join(map(str, row)) or 'none'}"
            )
        if not isinstance(raw_text, str):
            raise RecordError("must be a string", field="text", got=raw_text)
        text = normalize(raw_text)
        if not text:
            raise RecordError("is empty", field="text", got=raw_text)
        values: dict[str, Any] = {name: _parse_id(row.get(name), name) for name in ID_FIELDS}
        values.update({name: _parse_string(row.get(name), name) for name in STRING_FIELDS})
        values.update({name: parse_count(row.get(name), name) for name in NUMERIC_FIELDS})
        values["created_at"] = _parse_created_at(row.get("created_at"))
        if values["id"] is None:
            values["id"] = make_post_id(values["author_id"], text)
        extra = {key: value for key, value in row.items() if key not in KNOWN_FIELDS}
        return cls(
            text=text, original_text=raw_text if keep_original else None, extra=extra, **values
        )

    @property
    def model_text(self) -> str:
        """What the models read: normalized title and text on separate lines,
        because titles on 小红书/知乎 often carry the pitch the body avoids."""
        title = normalize(self.title) if self.title else ""
        return f"{title}\n{self.text}" if title else self.text

    def to_dict(self) -> dict[str, Any]:
        """The post for output: id, text (original when kept), the known fields
        that are set, then the pass-through fields."""
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.original_text if self.original_text is not None else self.text,
        }
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out
