"""govtrain: governed PyTorch training, checked by TLA+ and recorded in a verifiable audit log.

Subpackages: `governance` (the pure decision core), `audit` (the log),
`formal` (TLC, replay, trace validation, spec-vs-code comparison), `pipeline`
(the torch side; needs the `train` extra), `cli`, and the package data
`specs` and `configs`. Only `pipeline` imports torch.
"""
