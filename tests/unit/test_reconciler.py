"""The reconciler over fakes: a send whose messages are lost is counted stalled while a message
may still come, then given up (devices failed ``lost``) once none can; nothing else is touched."""

from __future__ import annotations

from datetime import timedelta

from push365.fanout.reconciler import LOST, ReconcilePolicy, Reconciler
from tests.unit.test_send_service import World

POLICY = ReconcilePolicy(
    stall=timedelta(seconds=120),
    message_retention=timedelta(hours=2),
    lookback=timedelta(days=1),
)


def reconciler(world: World) -> Reconciler:
    world.fanout_repo.now = world.clock
    return Reconciler(world.fanout_repo, world.worker, POLICY, clock=world.clock)


def test_a_lost_batch_message_is_stalled_then_given_up_once_no_message_can_come() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    run = reconciler(world)
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))  # the plan
    world.queue.messages.clear()  # its batch message is lost

    world.now += timedelta(minutes=10)
    early = run.run()
    assert (early.unfinished, early.stalled, early.given_up) == (1, 1, 0)
    assert world.status(nid).status == "delivering"

    world.now += timedelta(hours=2)
    late = run.run()

    assert (late.given_up, late.batches_given_up) == (1, 1)
    status = world.status(nid)
    assert (status.status, status.counts.failed, status.counts.dead_lettered) == ("sent", 2, 1)
    errors = {d.error for d in world.notification_repo.deliveries[nid].values()}
    assert errors == {LOST}
    assert world.gateway.calls == {}
    assert run.run().unfinished == 0  # finished now: not looked at again


def test_a_plan_message_lost_ends_the_send_failed() -> None:
    world = World()
    world.subscribe("ok-1")
    run = reconciler(world)
    nid = world.send().notification_id
    world.queue.messages.clear()

    world.now += timedelta(hours=2, minutes=5)
    report = run.run()

    assert report.given_up == 1
    assert world.status(nid).status == "failed"


def test_a_send_that_finished_or_progresses_is_left_alone() -> None:
    world = World()
    world.subscribe("ok-1")
    run = reconciler(world)
    done = world.send().notification_id
    world.deliver()
    slow = world.send(title="other").notification_id
    world.handle(world.queue.messages.pop(0))  # planned; its batch still queued

    world.now += timedelta(minutes=1)
    report = run.run()

    assert (report.unfinished, report.stalled, report.given_up) == (0, 0, 0)  # too recent
    world.now += timedelta(hours=3)
    world.deliver()  # the batch message comes after all
    assert run.run().unfinished == 0
    assert world.status(done).status == world.status(slow).status == "sent"


def test_a_batch_a_worker_holds_is_not_given_up() -> None:
    world = World()
    world.subscribe("ok-1")
    run = reconciler(world)
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    world.now += timedelta(hours=3)
    world.fanout_repo.take(
        batch.organization_id, nid, 0, world.now, world.now + timedelta(seconds=45)
    )

    report = run.run()

    assert (report.given_up, report.batches_given_up) == (1, 0)
    assert world.status(nid).status == "delivering"
