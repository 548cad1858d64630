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

\* Ties in the reserve broken towards the higher index: every invariant and
\* property still holds (it is still a longest-waiting reserve), but the spec no
\* longer describes tiers.Reserve, which conform:DataTiers names.
TiesToHigherIndex_Before(t, s, w) == w[t] > w[s] \/ (w[t] = w[s] /\ t > s)

\* Rescore may move a sample that got no loss: refutes TiersMoveOnEvidence.
RetierUnseen_Rescored == Samples

\* Rescore may move a planned sample that got no loss (a skipped step's): refutes
\* TiersMoveOnEvidence, which a frame of Samples \ plan would not.
RetierPlanned_Rescored == plan

\* A draw one slot short: refutes PlanSize alone.
DrawShort_Plans(w) == {Reserve(w) \cup d : d \in {d \in SUBSET (Samples \ Reserve(w)) :
                                                  Cardinality(d) = Slots - R - 1}}

\* Any Slots samples, the reserve not forced in: refutes ReserveInPlan.
ReserveSkipped_Plans(w) == {d \in SUBSET Samples : Cardinality(d) = Slots}

\* A planned sample's wait is not reset: every sample is still drawn once (the
\* longest waiting go first), but once every wait saturates the reserve is the
\* lowest indices for ever and the draw may pass one sample over for good; refutes
\* EverySampleDrawn (its []<>, not a mere <>).
NeverReset_Aged(w, p) == [s \in Samples |-> IF s \in p THEN w[s] ELSE Min(w[s] + 1, MaxWait)]
=============================================================================
