"""Where a batch's items come from: a manifest (CSV or JSONL) or an S3 inbox. No Prefect here.

Manifest: one item per CSV row or JSONL line, with `source`, `model`, `prompt` and `params`
(a JSON object of `extend_video` parameters: duration, resolution, cut_type, negative_prompt,
seed, take, max_cost). CSV may also give those parameters as their own columns. Missing model,
prompt or params fall back to the batch's defaults. Blank lines and lines starting with `#` are
skipped. A line that can't be read becomes a failed item; it doesn't stop the others.

Inbox: `s3://bucket/prefix/` holds videos (`*.mp4`, `*.mov`) and optional sidecars
`<stem>.json` with `{"model", "prompt", "params"}`. A tick takes a video by writing
`<video name>.claim.json` create-only (`IfNoneMatch: *`), so two racing ticks can't both take it;
when the item ends, the claim is rewritten with its outcome and stays as the "processed" mark.
A claim still in state `claimed` after `reclaim_after_s` (its run died) may be taken over, again
race-free (`IfMatch` on the claim's ETag). To process a video again, delete its claim.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from rh_extend.storage import parse_s3_uri

VIDEO_SUFFIXES = (".mp4", ".mov")
CLAIM_SUFFIX = ".claim.json"
ITEM_FIELDS = ("source", "model", "prompt", "params")


class BatchItem(BaseModel):
    """One video to extend, as the batch will pass it to `extend_video`."""

    label: str
    source: str = ""
    model: str | None = None
    prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    origin: str = ""
    problem: str | None = None  # could not be read: fails without any run
    claim_key: str | None = None  # inbox only: the claim object to finish
    claim_etag: str | None = None


class Defaults(BaseModel):
    model: str | None = None
    prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stem(source: str) -> str:
    return PurePosixPath(urlparse(source).path or source).stem or "video"


def _with_defaults(raw: dict[str, Any], defaults: Defaults, label: str, origin: str) -> BatchItem:
    params = raw.get("params") or {}
    if isinstance(params, str):
        params = json.loads(params) if params.strip() else {}
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    extra = {k: v for k, v in raw.items() if k not in ITEM_FIELDS and v not in (None, "")}
    source = str(raw.get("source") or "").strip()
    if not source:
        raise ValueError("source is missing")
    return BatchItem(
        label=label,
        source=source,
        model=str(raw.get("model") or "").strip() or defaults.model,
        prompt=(str(raw["prompt"]) if raw.get("prompt") not in (None, "") else defaults.prompt),
        params={**defaults.params, **extra, **params},
        origin=origin,
    )


def _csv_value(value: str | None) -> Any:
    """CSV cells are text; numbers and JSON literals in parameter columns become values."""
    if value is None or value.strip() == "":
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_manifest(text: str, name: str, defaults: Defaults) -> list[BatchItem]:
    """Items from a manifest's text; `name` (file name or URI) picks CSV or JSONL."""
    is_csv = name.lower().endswith(".csv") or (
        not name.lower().endswith((".jsonl", ".ndjson", ".json"))
        and not text.lstrip().startswith("{")
    )
    return _parse_csv(text, name, defaults) if is_csv else _parse_jsonl(text, name, defaults)


def _parse_jsonl(text: str, name: str, defaults: Defaults) -> list[BatchItem]:
    items: list[BatchItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label = f"line-{number}"
        origin = f"{name}:{number}"
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("a line must be a JSON object")
            item = _with_defaults(raw, defaults, label, origin)
        except ValueError as exc:
            items.append(BatchItem(label=label, origin=origin, problem=f"{origin}: {exc}"))
            continue
        items.append(item.model_copy(update={"label": f"{label}-{_stem(item.source)}"}))
    return items


def _parse_csv(text: str, name: str, defaults: Defaults) -> list[BatchItem]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if not reader.fieldnames or "source" not in [f.strip() for f in reader.fieldnames]:
        return [
            BatchItem(
                label="header",
                origin=name,
                problem=f"{name}: the CSV header must name a 'source' column",
            )
        ]
    items: list[BatchItem] = []
    for number, row in enumerate(reader, start=2):
        clean = {(k or "").strip(): v for k, v in row.items() if k}
        if not any((v or "").strip() for v in clean.values()):
            continue
        label = f"row-{number}"
        origin = f"{name}:{number}"
        raw: dict[str, Any] = {
            key: (value if key in ITEM_FIELDS else _csv_value(value))
            for key, value in clean.items()
        }
        try:
            item = _with_defaults(raw, defaults, label, origin)
        except ValueError as exc:
            items.append(BatchItem(label=label, origin=origin, problem=f"{origin}: {exc}"))
            continue
        items.append(item.model_copy(update={"label": f"{label}-{_stem(item.source)}"}))
    return items


def read_manifest(location: str, defaults: Defaults, s3: Any = None) -> list[BatchItem]:
    """A manifest from a local path or an s3:// URI."""
    if location.startswith("s3://"):
        bucket, key = parse_s3_uri(location)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with body:
            text = body.read().decode("utf-8-sig")
    else:
        text = Path(location).expanduser().read_text(encoding="utf-8-sig")
    return parse_manifest(text, location, defaults)


# ----------------------------------------------------------------------------------- inbox


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _lost_race(exc: ClientError) -> bool:
    return _code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey"}


@dataclass(frozen=True)
class InboxScan:
    items: list[BatchItem]
    already_claimed: int
    settling: int


class Inbox:
    """An S3 prefix that receives videos; claims make each video processed once."""

    def __init__(self, uri: str, s3: Any) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"inbox must be an s3://bucket/prefix/ URI, not {uri!r}")
        self.bucket = parsed.netloc
        prefix = parsed.path.lstrip("/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.s3 = s3

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _objects(self) -> dict[str, dict[str, Any]]:
        objects: dict[str, dict[str, Any]] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                objects[obj["Key"]] = obj
        return objects

    def _read_json(self, key: str) -> Any:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with body:
            return json.loads(body.read())

    def _put(self, key: str, doc: dict[str, Any], **conditions: str) -> str | None:
        """Write a small JSON object; None when a condition failed (someone else won)."""
        try:
            answer = self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(doc, indent=2, sort_keys=True, default=str).encode(),
                ContentType="application/json",
                **conditions,
            )
        except ClientError as exc:
            if conditions and _lost_race(exc):
                return None
            raise
        return str(answer.get("ETag", ""))

    def scan(
        self,
        defaults: Defaults,
        *,
        claimed_by: str,
        settle_s: float = 0.0,
        reclaim_after_s: float | None = None,
        max_items: int | None = None,
    ) -> InboxScan:
        """Claim the videos no one has claimed yet and return them as items."""
        objects = self._objects()
        now = datetime.now(UTC)
        items: list[BatchItem] = []
        already = settling = 0
        for key in sorted(objects):
            if not key.lower().endswith(VIDEO_SUFFIXES):
                continue
            if max_items is not None and len(items) >= max_items:
                break
            claim_key = key + CLAIM_SUFFIX
            claim = objects.get(claim_key)
            take_over: dict[str, str] = {"IfNoneMatch": "*"}
            if claim is not None:
                stale = self._stale_claim(claim_key, claim, now, reclaim_after_s)
                if stale is None:
                    already += 1
                    continue
                take_over = {"IfMatch": stale}
            if settle_s > 0 and (now - objects[key]["LastModified"]).total_seconds() < settle_s:
                settling += 1
                continue
            source = f"s3://{self.bucket}/{key}"
            name = key[len(self.prefix) :]
            doc = {
                "state": "claimed",
                "source": source,
                "claimed_by": claimed_by,
                "claimed_at": now_iso(),
            }
            etag = self._put(claim_key, doc, **take_over)
            if etag is None:
                already += 1
                continue
            item = self._item(key, name, source, objects, defaults)
            items.append(item.model_copy(update={"claim_key": claim_key, "claim_etag": etag}))
        return InboxScan(items=items, already_claimed=already, settling=settling)

    def _stale_claim(
        self, claim_key: str, claim: dict[str, Any], now: datetime, reclaim_after_s: float | None
    ) -> str | None:
        """The ETag of a claim whose run never finished it, else None (leave it alone)."""
        if reclaim_after_s is None:
            return None
        if (now - claim["LastModified"]).total_seconds() < reclaim_after_s:
            return None
        try:
            doc = self._read_json(claim_key)
        except (ClientError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("state") != "claimed":
            return None
        return str(claim.get("ETag", "")) or None

    def _item(
        self,
        key: str,
        name: str,
        source: str,
        objects: dict[str, dict[str, Any]],
        defaults: Defaults,
    ) -> BatchItem:
        label = name
        sidecar_key = key.rsplit(".", 1)[0] + ".json"
        raw: dict[str, Any] = {"source": source}
        if sidecar_key in objects:
            try:
                sidecar = self._read_json(sidecar_key)
                if not isinstance(sidecar, dict):
                    raise ValueError("the sidecar must be a JSON object")
            except (ValueError, ClientError) as exc:
                return BatchItem(
                    label=label,
                    source=source,
                    origin=source,
                    problem=f"sidecar s3://{self.bucket}/{sidecar_key}: {exc}",
                )
            raw.update({k: v for k, v in sidecar.items() if k != "source"})
        try:
            return _with_defaults(raw, defaults, label, source)
        except ValueError as exc:
            return BatchItem(label=label, source=source, origin=source, problem=str(exc))

    def finish(self, item: BatchItem, outcome: dict[str, Any]) -> bool:
        """Rewrite the item's claim with its outcome; False if someone took the claim over."""
        if not item.claim_key:
            return False
        state = {
            "archived": "done",
            "reused": "done",
            "duplicate": "done",
            "in_progress": "in_progress_elsewhere",
        }.get(str(outcome.get("status")), "failed")
        doc = {
            "state": state,
            "source": item.source,
            "finished_at": now_iso(),
            "outcome": outcome,
        }
        conditions = {"IfMatch": item.claim_etag} if item.claim_etag else {}
        return self._put(item.claim_key, doc, **conditions) is not None
