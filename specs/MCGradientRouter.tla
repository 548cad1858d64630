-------------------------- MODULE MCGradientRouter --------------------------
(***************************************************************************)
(* The models of GradientRouter (MCGradientRouter*.cfg) and the router's   *)
(* broken variants, each an operator <Variant>_<Operator> that a model's   *)
(* .cfg swaps in (Quota <- NoBatchClamp_Quota).                            *)
(***************************************************************************)
EXTENDS GradientRouter

\* Every batch the router can face, routed once: any clock up to the warmup (Spec
\* reaches each, NextBatch saturating there), any batch.  Its routed states are
\* exactly Spec's, without the edges from every routed state to every next batch;
\* govtrain/formal/compare.py compares them with routing.quota and route.
AnyBatchInit == /\ clock \in 0..Warmup
                /\ \E b \in Batches : frozen = b.frozen /\ units = b.units /\ scores = b.scores
                /\ quota = 0
                /\ routed = {}
                /\ stage = "batch"
RouteOnceSpec == AnyBatchInit /\ [][Route]_rvars

\* The quota is the allocation, not clamped to the batch: refutes
\* QuotaWithinBatch.
NoBatchClamp_Quota(fr, u, c) ==
    CASE fr -> 0
      [] InWarmup(c) -> Batch
      [] OTHER -> u

\* The warmup is checked before the frozen flag, so frozen groups get the whole
\* batch during the warmup: refutes FrozenGetsNoGradient.
WarmupRoutesFrozen_Quota(fr, u, c) ==
    CASE InWarmup(c) -> Batch
      [] fr -> 0
      [] OTHER -> Min(u, Batch)

\* Ties broken towards the higher index: every quota, bound and warmup rule
\* holds, so only the counting RoutedAreTopScoring (written without Outranks)
\* refutes it.
TiesToHigherIndex_Outranks(i, j, s) == s[i] > s[j] \/ (s[i] = s[j] /\ i > j)
=============================================================================
