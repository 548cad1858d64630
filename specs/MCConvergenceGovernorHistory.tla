---------------------- MODULE MCConvergenceGovernorHistory ----------------------
(***************************************************************************)
(* NoCoolingFromCold checked against a history of its own, not the        *)
(* seenHigh flag the guard reads: learned records whether the governor     *)
(* took a Learn step (a high signal) since the last step that starts it    *)
(* from cold (Activate or Awaken).  CoolsOnlyAfterLearning then says what  *)
(* NoCoolingFromCold means without trusting seenHigh, so a bug that sets   *)
(* the flag wrongly (ActivateWarm) is refuted although NoCoolingFromCold   *)
(* holds.                                                                  *)
(***************************************************************************)
EXTENDS MCConvergenceGovernor

VARIABLE learned
hvars == <<vars, learned>>

HInit == Init /\ learned = FALSE

HNext == \/ (Activate \/ Awaken) /\ learned' = FALSE
         \/ Learn /\ learned' = TRUE
         \/ (BeginCooling \/ Cool \/ Converge \/ Reheat) /\ UNCHANGED learned

HSpec == HInit /\ [][HNext]_hvars

CoolsOnlyAfterLearning == phase \in {"COOLING", "CONVERGED"} => learned
=============================================================================
