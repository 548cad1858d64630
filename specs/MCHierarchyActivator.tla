------------------------ MODULE MCHierarchyActivator ------------------------
(* Constants for the HierarchyActivator models (TLC's .cfg files cannot    *)
(* write tuples).                                                          *)
EXTENDS HierarchyActivator

\* configs/small.yaml: embed and body at level 0, head at level 1; 8 steps,
\* emergency at three quarters of the run, one warmup step.
SmallLevel == <<0, 0, 1>>
SmallSteps == 8
SmallEmergency == <<3, 4>>
SmallWarmup == 1

\* Three levels whose emergency deadlines coincide (2 steps, fraction 1/2:
\* both level 1 and level 2 are due at step 1), so a cascade would skip one.
ThreeLevel == <<0, 1, 2>>
ThreeSteps == 2
Half == <<1, 2>>
ThreeWarmup == 0
=============================================================================
