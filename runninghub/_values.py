"""RunningHub's loosely typed values: numbers as strings, blanks meaning none; and `Usage`,
what a task consumed, which both answers and failures carry."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WireModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def to_text(value: Any) -> Any:
    """Numbers (and other scalars) to str, blanks to None."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        return str(value)
    return blank_to_none(value)


def to_decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


class Usage(WireModel):
    """What a task consumed. Values arrive as strings, numbers or null."""

    consume_money: str | None = Field(None, alias="consumeMoney")
    consume_coins: str | None = Field(None, alias="consumeCoins")
    task_cost_time: str | None = Field(None, alias="taskCostTime")
    third_party_consume_money: str | None = Field(None, alias="thirdPartyConsumeMoney")

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return to_text(value)

    @property
    def cost(self) -> Decimal | None:
        """Money charged: `thirdPartyConsumeMoney` for Standard Model calls, else consumeMoney."""
        for value in (self.third_party_consume_money, self.consume_money):
            amount = to_decimal(value)
            if amount is not None:
                return amount
        return None
