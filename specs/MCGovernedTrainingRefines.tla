-------------------- MODULE MCGovernedTrainingRefines ---------------------
(* The soundness of GovernedTrainingAbstract at the bounds of               *)
(* configs/small.yaml: every behaviour of GovernedTraining, seen through     *)
(* the abstraction (each clock and quiet count as the lowest value of its   *)
(* interval, the governors' counters at fixed values), is a behaviour of    *)
(* the abstract spec.                                                        *)
EXTENDS MCGovernedTraining

Points == INSTANCE GovernedTrainingAbstract
Abstract == INSTANCE GovernedTrainingAbstract
                WITH clock <- Points!ClockRep(clock), quiet <- Points!QuietRep(quiet),
                     seenHigh <- Points!AllSeen, lows <- Points!Zeros,
                     awakenings <- Points!Zeros
\* Abstract!ASpec, as its two conjuncts, so that TLC names the one that fails.
AbstractInit == Abstract!AInit
AbstractSteps == [][Abstract!ANext]_(Abstract!vars)

\* The broken abstraction (Ends <- [GovernedTrainingAbstract] LowEndOnly_Ends): steps
\* taken from the lowest value of an interval only, never from its last, so no step
\* crosses into the next interval by itself and the refinement fails.
LowEndOnly_Ends(points, r) == {r}
=============================================================================
