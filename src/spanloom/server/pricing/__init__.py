"""Token prices: genai-prices' maintained table, a user's price file winning (table.py)."""

from spanloom.server.pricing.linear import TokenCounts
from spanloom.server.pricing.table import PriceSource, PriceTable, load_price_table

__all__ = ["PriceSource", "PriceTable", "TokenCounts", "load_price_table"]
