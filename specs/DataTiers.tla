------------------------------- MODULE DataTiers -------------------------------
(***************************************************************************)
(* Governed data tiers; Python: governance/tiers.py.                       *)
(*                                                                         *)
(* Training draws its batches from a plan of Slots distinct samples (one   *)
(* period).  A step's per-sample losses are observed; at Rescore every     *)
(* observed sample may take a new tier (the environment picks it: the      *)
(* losses are abstracted away), the samples not planned wait one period    *)
(* longer, and the next plan is the Reserve (the R longest-waiting         *)
(* samples, ties to the lower index) plus a draw of the other slots.       *)
(* Python weights the draw by tier; every weight is positive, so any       *)
(* subset can be drawn, and the spec lets the draw be any subset of the    *)
(* right size: a safe over-approximation, since only the Reserve keeps a   *)
(* sample from starving.  With R = ceil(N / MaxWait), no sample waits      *)
(* MaxWait periods (WaitBounded), so each is drawn again within MaxWait    *)
(* re-scorings (EverySampleDrawn).                                         *)
(*                                                                         *)
(* Its models: MCDataTiers.tla with MCDataTiers*.cfg; the broken variants  *)
(* are operators of MCDataTiers.tla that a model's .cfg swaps in.          *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    N,        \* training samples 1..N
    Slots,    \* a period's plan: data.tiers.rescore_every x router.batch_size
    MaxWait,  \* data.tiers.max_wait
    Tiers     \* the tiers a sample may take (Python: TIERS); "Learning" first

Samples == 1..N
Min(a, b) == IF a <= b THEN a ELSE b
CeilDiv(a, b) == (a + b - 1) \div b

\* The reserve's size (Python: reserve_size).
R == CeilDiv(N, MaxWait)

ASSUME /\ N \in Nat \ {0}
       /\ Slots \in 1..N
       /\ MaxWait \in Nat \ {0}
       /\ R <= Slots
       /\ "Learning" \in Tiers

VARIABLES
    tier,      \* tier[s]: sample s's tier
    wait,      \* wait[s]: whole periods since s was last planned (saturates at MaxWait)
    plan,      \* the current period's samples
    observed   \* the planned samples that got a loss since the last re-scoring
vars == <<tier, wait, plan, observed>>

\* Sample t is served before sample s: it has waited longer, or as long with a
\* lower index.
Before(t, s, w) == w[t] > w[s] \/ (w[t] = w[s] /\ t < s)

\* The R samples that have waited longest.
Reserve(w) == {s \in Samples : Cardinality({t \in Samples : Before(t, s, w)}) < R}

\* Every plan the reserve and a draw of the other slots can make.
Plans(w) == {Reserve(w) \cup d : d \in {d \in SUBSET (Samples \ Reserve(w)) :
                                          Cardinality(d) = Slots - R}}

-----------------------------------------------------------------------------
Init == /\ tier = [s \in Samples |-> "Learning"]
        /\ wait = [s \in Samples |-> 0]
        /\ plan \in Plans(wait)
        /\ observed = {}

\* A step of the period observes sample s's loss (a skipped, non-finite step
\* observes nothing, so a planned sample may go unobserved).
Observe(s) == /\ s \in plan \ observed
              /\ observed' = observed \cup {s}
              /\ UNCHANGED <<tier, wait, plan>>

\* The samples a re-scoring may move to another tier: those it has a loss for.
Rescored == observed

\* The waits after a period that planned p: its samples wait 0, the others one more.
Aged(w, p) == [s \in Samples |-> IF s \in p THEN 0 ELSE Min(w[s] + 1, MaxWait)]

\* End the period: re-tier what was observed, age the waits, plan the next.
Rescore == /\ \E t \in [Rescored -> Tiers] :
                 tier' = [s \in Samples |-> IF s \in DOMAIN t THEN t[s] ELSE tier[s]]
           /\ wait' = Aged(wait, plan)
           /\ plan' \in Plans(wait')
           /\ observed' = {}

Next == (\E s \in Samples : Observe(s)) \/ Rescore

Spec == Init /\ [][Next]_vars
FairSpec == Spec /\ WF_vars(Rescore)

-----------------------------------------------------------------------------
(* Invariants, as in governance/tiers.py.                                  *)

TypeOK == /\ tier \in [Samples -> Tiers]
          /\ wait \in [Samples -> 0..MaxWait]
          /\ plan \subseteq Samples
          /\ observed \subseteq plan

\* No sample has gone MaxWait periods unplanned.
WaitBounded == \A s \in Samples : wait[s] < MaxWait

\* A plan holds exactly Slots distinct samples, the reserve among them.
PlanSize == Cardinality(plan) = Slots
ReserveInPlan == Reserve(wait) \subseteq plan

\* A tier moves only on a loss observed since the last re-scoring.
TiersMoveOnEvidence == [][\A s \in Samples \ observed : tier'[s] = tier[s]]_vars

(* No starvation: every sample is planned again and again.                 *)
EverySampleDrawn == \A s \in Samples : []<>(s \in plan)

=============================================================================
