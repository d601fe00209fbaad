"""AI credits: plans, monthly periods, credit packs and the append-only ledger (API.md §4.5)."""
