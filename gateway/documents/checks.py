"""Business checks several document families share, each returning a located error."""
from __future__ import annotations

from decimal import Decimal

from gateway.mapping.engine import Value
from gateway.mapping.errors import FieldError

TOLERANCE = Decimal("0.01")


def amount(value: Decimal) -> str:
    """A decimal as the ERP would write it: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


_RELATIVE = Decimal("0.0001")   # 0.01 % of a large total


def price_times_qty(field: str, price: Value | None, qty: Value | None, total: Value | None) -> FieldError | None:
    """A line's total must be its unit price × quantity (within a cent, or 0.01 % of large totals)."""
    if not (price and qty and total):
        return None
    expected, stated = Decimal(price.text) * Decimal(qty.text), Decimal(total.text)
    if abs(expected - stated) <= max(TOLERANCE, stated * _RELATIVE):
        return None
    return FieldError.at(total.origin, field, "price*qty", f"total {total.text} is not unit price {price.text} × "
                                                           f"quantity {qty.text} = {amount(expected)}", total.text)
