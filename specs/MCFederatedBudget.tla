------------------------- MODULE MCFederatedBudget -------------------------
(***************************************************************************)
(* The models of FederatedBudget (MCFederatedBudget*.cfg) and the          *)
(* allocator's broken variants, each an operator <Variant>_<Operator> that *)
(* a model's .cfg swaps in (Open <- NoCeiling_Open).                       *)
(***************************************************************************)
EXTENDS FederatedBudget

\* Floors handed out even when they exceed the master budget: refutes
\* BudgetConserved.
FloorsWhenInfeasible_UseRation(e) == FALSE

\* The hand-out ignores the ceiling: refutes BudgetWithinBounds.
NoCeiling_Open(u, e) == e

\* The allocator of integer-division fame: proportional shares rounded down,
\* and the rounding remainder is lost (no hand-out follows): refutes
\* BudgetWorkConserving.
Proportional(w, e) ==
    LET rest == Master - Cardinality(e) * Floor
        total == SumOver(w, e)
    IN [g \in Groups |-> IF g \in e
                         THEN Floor + (IF total = 0 THEN 0 ELSE (rest * w[g]) \div total)
                         ELSE 0]
ProportionalFloor_StartAllocate(w, e) == Proportional(w, e)
ProportionalFloor_HandoutDone(u, e) == TRUE

\* Frozen groups keep their floor (and count towards feasibility): refutes
\* NoBudgetForFrozen.
FrozenKeepsFloor_Floored(e) == Groups

\* Sainte-Lague's divisors 1, 3, 5, ... in Before: the hand-out still ends in
\* Decision (HandoutIsDHondt reads the same Before), conserves and respects the
\* bounds; only HandoutIsOptimal, written without Before, refutes it.
SainteLague_Divisor(won) == 2 * won + 1
=============================================================================
