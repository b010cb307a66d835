"""The data lifecycle of backup sets: which to keep (retention) and how one is deleted."""
