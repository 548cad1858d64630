---------------------------- MODULE GradientRouter ----------------------------
(***************************************************************************)
(* The gradient router of one group; Python: governance/routing.py.        *)
(*                                                                         *)
(* The group's budget units become its per-step sample quota (one unit =   *)
(* one sample): zero when the group is frozen, the whole batch during the  *)
(* observation-only warmup, else min(units, Batch).  Route then picks the  *)
(* quota's highest-scoring samples of the batch, ties to the lower index,  *)
(* so every rank that sees the same scores routes the same samples.        *)
(*                                                                         *)
(* Its models: MCGradientRouter.tla with MCGradientRouter*.cfg; the broken *)
(* variants are operators of MCGradientRouter.tla that a model's .cfg      *)
(* swaps in.                                                               *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Batch,     \* router.batch_size; samples are 1..Batch
    Warmup,    \* router.warmup_steps
    MaxUnits,  \* the largest allocation the environment may hand the router
    Scores     \* the relevance scores a sample may have (per-sample loss, abstracted)

ASSUME /\ Batch \in Nat \ {0}
       /\ Warmup \in Nat
       /\ MaxUnits \in Nat
       /\ Scores \subseteq Nat

VARIABLES
    clock,   \* governance steps taken; only "still in warmup or not" matters
    frozen,  \* the group is DORMANT or CONVERGED
    units,   \* the group's budget allocation
    scores,  \* scores[i]: sample i's relevance in the current batch
    quota,   \* samples whose gradient reaches the group this step
    routed,  \* the samples routed to the group
    stage    \* "batch" (a batch arrived) or "routed"
rvars == <<clock, frozen, units, scores, quota, routed, stage>>

Samples == 1..Batch
Min(a, b) == IF a <= b THEN a ELSE b

InWarmup(c) == c < Warmup

\* FrozenGetsNoGradient; QuotaWithinBatch.
Quota(fr, u, c) ==
    CASE fr -> 0
      [] InWarmup(c) -> Batch
      [] OTHER -> Min(u, Batch)

\* Sample i comes before sample j: higher score, then lower index.
Outranks(i, j, s) == s[i] > s[j] \/ (s[i] = s[j] /\ i < j)

\* The k highest-scoring samples: those outranked by fewer than k others.
TopK(s, k) == {i \in Samples : Cardinality({j \in Samples : Outranks(j, i, s)}) < k}

\* The quota of the current group and batch.
QuotaNow == Quota(frozen, units, clock)

-----------------------------------------------------------------------------
(* The router as a state machine: NextBatch brings a batch and the         *)
(* group's decision (frozen or not, its units), Route routes it.           *)

Batches == [frozen : BOOLEAN, units : 0..MaxUnits, scores : [Samples -> Scores]]

Arrive(b) == /\ frozen' = b.frozen
             /\ units' = b.units
             /\ scores' = b.scores
             /\ quota' = 0
             /\ routed' = {}
             /\ stage' = "batch"

Init == /\ clock = 0
        /\ \E b \in Batches : frozen = b.frozen /\ units = b.units /\ scores = b.scores
        /\ quota = 0
        /\ routed = {}
        /\ stage = "batch"

Route == /\ stage = "batch"
         /\ quota' = QuotaNow
         /\ routed' = TopK(scores, quota')
         /\ stage' = "routed"
         /\ UNCHANGED <<clock, frozen, units, scores>>

NextBatch == /\ stage = "routed"
             /\ clock' = Min(clock + 1, Warmup)
             /\ \E b \in Batches : Arrive(b)

Next == Route \/ NextBatch

Spec == Init /\ [][Next]_rvars
FairSpec == Spec /\ WF_rvars(Route) /\ WF_rvars(NextBatch)

-----------------------------------------------------------------------------
(* Invariants, as in governance/invariants.py, plus what Route promises.   *)

TypeOK == /\ clock \in 0..Warmup
          /\ frozen \in BOOLEAN
          /\ units \in 0..MaxUnits
          /\ scores \in [Samples -> Scores]
          /\ quota \in Nat
          /\ routed \subseteq Samples
          /\ stage \in {"batch", "routed"}

QuotaWithinBatch == quota \in 0..Batch

FrozenGetsNoGradient == frozen => quota = 0 /\ routed = {}

\* Route picks exactly the quota, and the top of the batch by counting, written
\* without Outranks: sample i is routed exactly when fewer than quota samples
\* score higher or tie with it at a lower index.
RouteHonoursQuota == stage = "routed" => Cardinality(routed) = quota
RoutedAreTopScoring ==
    stage = "routed" =>
        \A i \in Samples :
            i \in routed <=> Cardinality({j \in Samples : scores[j] > scores[i]})
                             + Cardinality({j \in 1..(i - 1) : scores[j] = scores[i]}) < quota

(* The observation-only warmup ends, and every batch is routed.           *)
WarmupEnds == <>[](~InWarmup(clock))
EveryBatchRouted == (stage = "batch") ~> (stage = "routed")

=============================================================================
