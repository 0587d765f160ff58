"""Price preview and the budget guard: refuse before submitting, not after paying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger

from rh_extend.clients import runninghub_client
from rh_extend.errors import BudgetExceededError
from rh_extend.settings import load_settings
from runninghub import RunningHubError, get_model


def preview_price(
    request_key: str,
    model_id: str,
    video_url: str,
    params: Mapping[str, object],
    max_cost: float | None,
) -> dict[str, Any] | None:
    """RunningHub's estimate, checked against `max_cost`; None when there is no estimate."""
    logger = get_run_logger()
    body = get_model(model_id).build_body(video_url, params)
    try:
        with runninghub_client(load_settings()) as client:
            preview = client.price_preview(model_id, body)
    except RunningHubError as exc:
        if max_cost is None:
            logger.warning("[%s] no price preview (%s); no budget set", request_key[:12], exc)
            return None
        raise BudgetExceededError(
            f"max_cost={max_cost} is set but RunningHub gave no price preview ({exc}); "
            "not submitted. Run without --max-cost / RH_EXTEND_MAX_COST to submit unchecked."
        ) from exc
    price = float(preview.estimated_price)
    logger.info("[%s] price preview %.2f %s", request_key[:12], price, preview.currency)
    if max_cost is not None and price > max_cost:
        raise BudgetExceededError(
            f"estimated price {price:.2f} {preview.currency} is over max_cost={max_cost:.2f}: "
            "not submitted. Raise --max-cost, or shorten --duration / lower --resolution."
        )
    return {"estimated": price, "currency": preview.currency}
