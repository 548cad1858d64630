---- MODULE FederatedBudget_TTrace_1796095808 ----
EXTENDS Sequences, TLCExt, Toolbox, Naturals, TLC, FederatedBudget

_expression ==
    LET FederatedBudget_TEExpression == INSTANCE FederatedBudget_TEExpression
    IN FederatedBudget_TEExpression!expression
----

_trace ==
    LET FederatedBudget_TETrace == INSTANCE FederatedBudget_TETrace
    IN FederatedBudget_TETrace!trace
----

_inv ==
    ~(
        TLCGet("level") = Len(_TETrace)
        /\
        stage = ("handout")
        /\
        eligible = ({1, 2})
        /\
        weight = (<<1, 3, 0>>)
        /\
        units = (<<2, 4, 0>>)
    )
----

_init ==
    /\ weight = _TETrace[1].weight
    /\ eligible = _TETrace[1].eligible
    /\ units = _TETrace[1].units
    /\ stage = _TETrace[1].stage
----

_next ==
    /\ \E i,j \in DOMAIN _TETrace:
        /\ \/ /\ j = i + 1
              /\ i = TLCGet("level")
        /\ weight  = _TETrace[i].weight
        /\ weight' = _TETrace[j].weight
        /\ eligible  = _TETrace[i].eligible
        /\ eligible' = _TETrace[j].eligible
        /\ units  = _TETrace[i].units
        /\ units' = _TETrace[j].units
        /\ stage  = _TETrace[i].stage
        /\ stage' = _TETrace[j].stage

\* Uncomment the ASSUME below to write the states of the error trace
\* to the given file in Json format. Note that you can pass any tuple
\* to `JsonSerialize`. For example, a sub-sequence of _TETrace.
    \* ASSUME
    \*     LET J == INSTANCE Json
    \*         IN J!JsonSerialize("FederatedBudget_TTrace_1796095808.json", _TETrace)

=============================================================================

 Note that you can extract this module `FederatedBudget_TEExpression`
  to a dedicated file to reuse `expression` (the module in the 
  dedicated `FederatedBudget_TEExpression.tla` file takes precedence 
  over the module `FederatedBudget_TEExpression` below).

---- MODULE FederatedBudget_TEExpression ----
EXTENDS Sequences, TLCExt, Toolbox, Naturals, TLC, FederatedBudget

expression == 
    [
        \* To hide variables of the `FederatedBudget` spec from the error trace,
        \* remove the variables below.  The trace will be written in the order
        \* of the fields of this record.
        weight |-> weight
        ,eligible |-> eligible
        ,units |-> units
        ,stage |-> stage
        
        \* Put additional constant-, state-, and action-level expressions here:
        \* ,_stateNumber |-> _TEPosition
        \* ,_weightUnchanged |-> weight = weight'
        
        \* Format the `weight` variable as Json value.
        \* ,_weightJson |->
        \*     LET J == INSTANCE Json
        \*     IN J!ToJson(weight)
        
        \* Lastly, you may build expressions over arbitrary sets of states by
        \* leveraging the _TETrace operator.  For example, this is how to
        \* count the number of times a spec variable changed up to the current
        \* state in the trace.
        \* ,_weightModCount |->
        \*     LET F[s \in DOMAIN _TETrace] ==
        \*         IF s = 1 THEN 0
        \*         ELSE IF _TETrace[s].weight # _TETrace[s-1].weight
        \*             THEN 1 + F[s-1] ELSE F[s-1]
        \*     IN F[_TEPosition - 1]
    ]

=============================================================================



Parsing and semantic processing can take forever if the trace below is long.
 In this case, it is advised to uncomment the module below to deserialize the
 trace from a generated binary file.

\*
\*---- MODULE FederatedBudget_TETrace ----
\*EXTENDS IOUtils, TLC, FederatedBudget
\*
\*trace == IODeserialize("FederatedBudget_TTrace_1796095808.bin", TRUE)
\*
\*=============================================================================
\*

---- MODULE FederatedBudget_TETrace ----
EXTENDS TLC, FederatedBudget

trace == 
    <<
    ([stage |-> "request",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<0, 0, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<0, 0, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<0, 1, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<1, 1, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<1, 2, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<1, 3, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<1, 4, 0>>]),
    ([stage |-> "handout",eligible |-> {1, 2},weight |-> <<1, 3, 0>>,units |-> <<2, 4, 0>>])
    >>
----


=============================================================================

---- CONFIG FederatedBudget_TTrace_1796095808 ----
CONSTANTS
    Groups = { 1 , 2 , 3 }
    Master = 6
    Floor = 0
    Ceiling = 5
    Weights = { 0 , 1 , 2 , 3 , 4 , 5 }
    Bug = "SainteLague"

INVARIANT
    _inv

CHECK_DEADLOCK
    \* CHECK_DEADLOCK off because of PROPERTY or INVARIANT above.
    FALSE

INIT
    _init

NEXT
    _next

CONSTANT
    _TETrace <- _trace

ALIAS
    _expression
=============================================================================
\* Generated on Tue Dec 01 03:30:10 UTC 2026