"""Tamper-evident audit log: hash chain, Merkle proofs, signed checkpoints (torch-free)."""
