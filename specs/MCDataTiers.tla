----------------------------- MODULE MCDataTiers -----------------------------
(***************************************************************************)
(* The models of DataTiers (MCDataTiers*.cfg) and the broken variants of   *)
(* the data pipeline, each an operator <Variant>_<Operator> that a model's *)
(* .cfg swaps in (R <- NoReserve_R).                                       *)
(***************************************************************************)
EXTENDS DataTiers

\* No reserve: plans are the draw alone, so a sample the draw keeps passing
\* over waits for ever, which refutes WaitBounded, and EverySampleDrawn even
\* with fairness.
NoReserve_R == 0

\* The reserve rounded down (floor, not ceiling): at 5 samples and max_wait 3
\* a sample can wait three periods, which refutes WaitBounded.
ReserveRoundsDown_R == N \div MaxWait

\* The reserve is the lowest indices, not the longest waiting: refutes
\* WaitBounded.
ReserveByIndex_Before(t, s, w) == t < s

\* Rescore may move a sample that got no loss: refutes TiersMoveOnEvidence.
RetierUnseen_Rescored == Samples
=============================================================================
