"""Names the batch job and its command line share (importing no pandas, so that the
``xlmvar`` command can offer ``batch`` without loading it)."""

#: --method choices and the engine method used on the group P&L (see the module notes)
BATCH_METHODS = {"historical": "pnl", "normal": "normal", "cornish-fisher": "cornish-fisher"}

TOTAL = "Total"
