----------------------- MODULE MCGovernedTrainingInductive -----------------------
(***************************************************************************)
(* Safety beyond the explored depth (configs/small.yaml's constants): the  *)
(* conjunction IndInv of the composition's state invariants, with the two  *)
(* facts they rest on, is inductive.  The model starts from EVERY typed    *)
(* state that satisfies IndInv, reachable or not, and TLC checks IndInv in *)
(* all their successors: IndInv /\ [Next]_vars => IndInv'.  The budget and *)
(* router invariants are checked in every such state too (for every vector *)
(* of needs), so they hold of any state the step can be in, not only of    *)
(* the 1,443 reachable ones.                                               *)
(*                                                                         *)
(* RefinesComponents: every composed step moves each group by one step of  *)
(* ConvergenceGovernor's Next (an Observe or Activate) or leaves it alone,  *)
(* and moves the level by HierarchyActivator's rules (never down, at most  *)
(* one level, only when NextLevel says so), and the computed groups by its *)
(* NextComputed.                                                           *)
(***************************************************************************)
EXTENDS MCGovernedTrainingBroken

Typed == /\ clock \in 0..Horizon
         /\ activeLevel \in 0..MaxLevel
         /\ quiet \in 0..FinishWindow
         /\ phase \in [Groups -> Gov(1)!Phases]
         /\ seenHigh \in [Groups -> BOOLEAN]
         /\ lows \in [Groups -> 0..(Patience - 1)]
         /\ awakenings \in [Groups -> 0..MaxAwakenings]

\* computed is not enumerated: ComputedIsNotDormant, a conjunct, fixes it from the
\* phases (TLC reads it as an assignment), so no typed state is left out.
IndInv == /\ Typed
          /\ \A g \in Groups : lows[g] # 0 => phase[g] = "COOLING"   \* with TypeOK: lows counts only while cooling
          /\ NoCoolingFromCold
          /\ AwakeningsBounded
          /\ DormantAboveLevel
          /\ ComputedIsNotDormant
          /\ FinishOnlyWhenAllConverged

IndSpec == IndInv /\ [][Next]_vars

\* One group's move in a composed step is a step of its own governor.
GroupStep(g) ==
    LET now == Gov(g)!GroupState(phase[g], seenHigh[g], lows[g], awakenings[g])
        next == Gov(g)!GroupState(phase'[g], seenHigh'[g], lows'[g], awakenings'[g])
    IN \/ next = now
       \/ \E high, wake \in BOOLEAN : Gov(g)!Observe(now, high, wake).next = next
       \/ phase[g] = "DORMANT" /\ next = Gov(g)!Activated(now)

RefinesComponents ==
    [][/\ \A g \in Groups : GroupStep(g)
       /\ activeLevel' \in {activeLevel, Hier!NextLevel(phase', activeLevel, clock')}
       /\ Hier!LevelNeverFalls
       /\ Hier!LevelRisesByAtMostOne
       /\ computed' = Hier!NextComputed(computed, phase', activeLevel, activeLevel')
       /\ Hier!KeepsComputing]_vars
=============================================================================
