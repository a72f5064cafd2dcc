"""When the supervisor starts a child again that died (vpop.server.lifetime.Restarts)."""

from vpop.server.lifetime import Restarts


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_child_that_lived_long_starts_again_at_once():
    clock = Clock()
    restarts = Restarts(clock=clock)
    clock.now = 3600.0
    assert restarts.died() == 0.0 and restarts.due()


def test_a_child_dying_young_waits_longer_each_time_up_to_the_longest():
    clock = Clock()
    restarts = Restarts(first=0.2, longest=30.0, settled=60.0, clock=clock)
    delays = []
    for _ in range(10):
        clock.now += 0.1  # dies at once
        delays.append(restarts.died())
        assert not restarts.due() or delays[-1] == 0.0
        clock.now += delays[-1]
        assert restarts.due()
        restarts.started()
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_asking_again_about_the_same_death_does_not_push_the_start_back():
    clock = Clock()
    restarts = Restarts(first=0.2, clock=clock)
    clock.now = 1.0
    assert restarts.died() == 0.2
    clock.now = 1.1
    assert abs(restarts.died() - 0.1) < 1e-9 and not restarts.due()
    clock.now = 1.2
    assert restarts.due()


def test_a_long_life_forgets_the_earlier_deaths():
    clock = Clock()
    restarts = Restarts(first=0.2, settled=60.0, clock=clock)
    for _ in range(5):
        clock.now += restarts.died() + 0.1
        restarts.started()
    clock.now += 61.0
    assert restarts.died() == 0.0
