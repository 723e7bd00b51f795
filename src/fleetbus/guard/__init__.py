"""Deciding and remembering what may happen: policy, approvals, audit, limits."""
