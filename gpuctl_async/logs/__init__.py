"""Job logs: one-shot tails and live streams shared between subscribers (DESIGN.md §6)."""
