"""`python -m govtrain ...` (and `torchrun -m govtrain run ...`): the CLI."""

from govtrain.cli import main

main()
