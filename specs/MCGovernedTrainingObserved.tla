------------------------ MODULE MCGovernedTrainingObserved ------------------------
(***************************************************************************)
(* ConvergenceGovernor's LowSignalConverges for each group of the          *)
(* composition (configs/small.yaml), whatever the other groups and the     *)
(* hierarchy do.  A high signal on a group that already learned changes    *)
(* nothing, so the composed state cannot say whether a group's signal      *)
(* stayed low: the history variable lastHigh records each step's           *)
(* observation, and a group whose signal is eventually always low must end *)
(* up CONVERGED, or cold (learning, never high since its last activation). *)
(***************************************************************************)
EXTENDS MCGovernedTraining

VARIABLE lastHigh
ovars == <<vars, lastHigh>>

ObservedInit == Init /\ lastHigh = [g \in Groups |-> FALSE]

ObservedNext == \E high \in Signals, wake \in Wakes :
                    GovernanceStep(high, wake) /\ lastHigh' = high

ObservedSpec == ObservedInit /\ [][ObservedNext]_ovars
ObservedFairSpec == ObservedSpec /\ WF_ovars(ObservedNext)

LowSignalConvergesEach ==
    \A g \in Groups :
        <>[](~lastHigh[g])
            => <>[](phase[g] = "CONVERGED" \/ (phase[g] \in {"ACTIVE", "AWAKENED"} /\ ~seenHigh[g]))
=============================================================================
