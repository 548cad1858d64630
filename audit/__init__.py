"""Tamper-evident audit log: hash chain, Merkle proofs, signed checkpoints (torch-free).

Modules, each with one job: `records` (RFC 8785 lines, the hash chain), `merkle`
(RFC 6962 trees and proofs), `keys` and `notes` (Ed25519 keys, C2SP signed-note
checkpoints), `log` (the `AuditLog` writer), `verify` (`verify_run`, `verify_bytes`),
`repair` (torn tails only), `proofs` (offline inclusion proofs), `provenance`
(run_start and the signed in-toto/SLSA export) and `dsse` (envelopes). See
docs/audit.md for the commands and the guarantees.
"""
