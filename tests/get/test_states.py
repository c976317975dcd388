"""The state machine table and the planner."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attpcdaq.get import OPERATIONS, Operation, PlanError, State, backward_step, plan, step_for

LIVE = st.sampled_from([s for s in State if s != State.OFF])


def ops(steps):
    return [step.operation for step in steps]


def test_idle_to_ready_is_describe_prepare_configure():
    assert ops(plan(State.IDLE, State.READY)) == [
        Operation.DESCRIBE, Operation.PREPARE, Operation.CONFIGURE]


def test_running_to_idle_breaks_up_then_undoes_twice():
    # Breakup works from Running (the server stops the run first), so it is shortest.
    assert ops(plan(State.RUNNING, State.IDLE)) == [
        Operation.BREAKUP, Operation.UNDO, Operation.UNDO]
    assert ops(plan(State.PAUSED, State.PREPARED)) == [Operation.BREAKUP]
    assert ops(plan(State.RUNNING, State.READY)) == [Operation.STOP]
    assert ops(plan(State.PAUSED, State.READY)) == [Operation.STOP]


def test_undo_only_from_described_and_prepared():
    assert {step.source for step in OPERATIONS if step.operation == Operation.UNDO} == {
        State.DESCRIBED, State.PREPARED}
    for state in (State.IDLE, State.READY, State.RUNNING, State.PAUSED, State.OFF):
        with pytest.raises(PlanError):
            step_for(Operation.UNDO, state)


def test_a_board_left_off_by_a_failed_breakup_gets_out_by_breakup():
    assert step_for(Operation.BREAKUP, State.OFF).target == State.PREPARED
    assert ops(plan(State.OFF, State.IDLE)) == [
        Operation.BREAKUP, Operation.UNDO, Operation.UNDO]
    assert backward_step(State.OFF).operation == Operation.BREAKUP


def test_paused_to_running_resumes_and_ready_to_paused_starts_then_pauses():
    assert ops(plan(State.PAUSED, State.RUNNING)) == [Operation.RESUME]
    assert ops(plan(State.READY, State.PAUSED)) == [Operation.START, Operation.PAUSE]


@pytest.mark.parametrize("pair", [(State.IDLE, State.OFF), (State.READY, State.OFF), (9, 1),
                                  (1, 7)])
def test_off_as_a_target_or_unknown_states_cannot_be_planned(pair):
    with pytest.raises(PlanError):
        plan(*pair)


@given(st.sampled_from(list(State)), LIVE)
def test_plan_is_a_chain_of_allowed_steps_from_start_to_goal(start, goal):
    steps = plan(start, goal)
    state = start
    for step in steps:
        assert step_for(step.operation, state) == step
        state = step.target
    assert state == goal
    assert len(steps) <= 5  # Idle to Paused is the longest walk
    assert (len(steps) == 0) == (start == goal)


@given(LIVE, LIVE, LIVE)
def test_plan_is_shortest(a, b, c):
    # No detour through a third state is shorter than the plan.
    assert len(plan(a, c)) <= len(plan(a, b)) + len(plan(b, c))


def test_step_for_refuses_a_disallowed_operation():
    with pytest.raises(PlanError, match="Configure is not allowed from Idle"):
        step_for(Operation.CONFIGURE, State.IDLE)


def test_backward_step_goes_one_state_back():
    assert backward_step(State.RUNNING).operation == Operation.STOP
    assert backward_step(State.READY).operation == Operation.BREAKUP
    assert backward_step(State.DESCRIBED).target == State.IDLE
    with pytest.raises(PlanError):
        backward_step(State.IDLE)


def test_every_operation_has_a_distinct_transition_code_except_shared_ones():
    codes = {step.operation: step.code for step in OPERATIONS}
    assert len(set(codes.values())) == len(Operation)
