"""The governance decision core: pure, deterministic, torch-free state machines.

Every decision is a function of (state, observation, config), so it can be
explored exhaustively, replayed from an audit log and compared with the TLA+
specs in `specs/`, which use the same state, action and invariant names.
"""
