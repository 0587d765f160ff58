"""The account and its prices: POST /uc/openapi/accountStatus (legacy key) and
POST /openapi/v2/price-preview/<model endpoint> (what a submit would cost, nothing billed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import wire
from ..api_keys import fingerprint
from ..faults import FaultContext
from ..lifecycle import Status
from ..models_table import model_for_price_preview
from ..validation import FieldError, validate_submit
from .dependencies import MALFORMED, Auth, Faults, State, envelope_error, prompt_of, read_json

PRICE_PREFIX = "/openapi/v2/price-preview/"
ACCOUNT_PATH = "/uc/openapi/accountStatus"

router = APIRouter()


@router.post(PRICE_PREFIX + "{rest:path}")
async def price_preview(
    request: Request, rest: str, st: State, auth: Auth, faults: Faults
) -> Response:
    body = await read_json(request)
    resp = await faults.check("price", FaultContext(prompt_of(body)), envelope_error)
    if resp is not None:
        return resp
    if body is MALFORMED:
        return wire.html_page(400)
    if auth.bearer() is None:
        return wire.envelope(1002, "invalid api key", message="invalid api key")
    spec = model_for_price_preview(rest)
    if spec is None:
        return wire.envelope(1001, f"unknown endpoint: {rest}", message="unknown endpoint")
    try:
        params = validate_submit(spec, body)
    except FieldError as exc:
        return wire.envelope(1007, str(exc), message=str(exc))
    price = wire.money(spec.price(params))
    return wire.envelope(0, "success", {"estimatedPrice": price, "currency": st.config.currency})


@router.post(ACCOUNT_PATH)
async def account_status(request: Request, st: State, auth: Auth, faults: Faults) -> Response:
    body = await read_json(request, empty={})  # a Bearer header alone is enough
    resp = await faults.check("account", FaultContext(), envelope_error)
    if resp is not None:
        return resp
    if body is MALFORMED:
        return wire.html_page(400)
    key = auth.legacy(body)
    if key is None:
        return wire.envelope(802, "APIKEY_INVALID")
    counts = st.active_counts(fingerprint(key))
    active = sum(
        n for s, n in counts.items() if s in (Status.CREATE, Status.QUEUED, Status.RUNNING)
    )
    balance = st.balance
    return wire.envelope(
        0,
        "success",
        {
            "remainCoins": str(st.config.remain_coins),
            "currentTaskCounts": str(active),
            "remainMoney": None if balance is None else wire.money(balance),
            "currency": st.config.currency,
            "apiType": "NORMAL",
        },
    )
