"""
Tests for L{pypid.daemon.workers}: the supervisor starts its workers with
the descriptors they inherit, logs their lines, is ready once all are,
starts again a worker that ended (with a back-off that grows while it
ends soon after its start, and begins anew once it ran steadily), passes
signals on, and stops them all (killing one that outlives the deadline);
and with real processes, on the lean supervisor's loop.
"""

import os
import signal
import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.lean_loop import Loop, Processes
from pypid.daemon.workers import (
    FIRST_WORD,
    LOADING_AFTER,
    READY_FD,
    Command,
    Pace,
    StartFailed,
    Supervisor,
)

#: The supervisor's times and counts, which the tests give by name.
PACE = ("at_once", "hang_after", "silent_after", "back_off", "steady", "stop_deadline")


class _Process:
    """A worker process the test ends."""

    def __init__(self, command, output, ended, pid):
        self.command = command
        self._output = output
        self._ended = ended
        self.pid = pid
        self.signals = []

    def signal(self, signum):
        self.signals.append(signum)

    def say(self, fd, data):
        self._output(fd, data)

    def end(self, how="exited"):
        self._ended(how)


class _Spawner(Clock):
    """A clock that also records the processes it spawns."""

    def __init__(self):
        super().__init__()
        self.spawned = []

    def __call__(self, command, output, ended):
        process = _Process(command, output, ended, 1000 + len(self.spawned))
        self.spawned.append(process)
        return process


class _Log(list):
    """The supervisor's log lines."""

    def __call__(self, level, text):
        self.append(text)


def _supervisor(count, command, **kwargs):
    """A supervisor of C{count} workers on a recording spawner, with its log and readiness."""
    spawner, log, ready = _Spawner(), _Log(), []
    pace = {key: kwargs.pop(key) for key in list(kwargs) if key in PACE}
    supervisor = Supervisor(spawner, spawner, count, command, log, pace=Pace(**pace),
                            on_ready=lambda: ready.append(True), **kwargs)
    return supervisor, spawner, log, ready


def _ended_all(supervisor, *processes):
    """Stop C{supervisor}, its C{processes} ending at once: whether it said it stopped."""
    stopped = []
    supervisor.stop(lambda: stopped.append(True))
    for process in processes:
        process.end()
    return stopped


def command(number):
    return Command("/usr/bin/python3", ("python3", "-m", "pypid", f"--worker={number}"),
                   {"PATH": "/usr/bin"}, {7: 7, 8: 9})


class SupervisorTests(SynchronousTestCase):
    """The supervisor on a memory reactor."""

    def setUp(self):
        self.supervisor, self.reactor, self.log, self.ready = _supervisor(
            2, command, back_off=(1.0, 2.0, 5.0), steady=60.0, stop_deadline=30.0)
        self.supervisor.start()

    def process(self, number, nth=0):
        """The C{nth} process started for worker C{number}."""
        return [p for p in self.reactor.spawned
                if p.command.args[-1] == f"--worker={number}"][nth]

    def test_started(self):
        """Each worker starts with its command and the descriptors it inherits."""
        self.assertEqual([p.command for p in self.reactor.spawned], [command(n) for n in (1, 2)])

    def test_lines_and_ready(self):
        """A worker's lines are logged under its number; ready once every worker said so."""
        self.process(1).say(1, b"Index loaded\nhalf a ")
        self.process(1).say(1, b"line\n")
        self.process(2).say(READY_FD, b"ready\n")
        self.assertEqual(self.ready, [])
        self.process(1).say(READY_FD, b"ready\n")
        self.assertEqual(self.ready, [True])
        lines = self.log
        self.assertIn("worker 1: Index loaded", lines)
        self.assertIn("worker 1: half a line", lines)
        self.assertIn("Worker 2 is ready", lines)

    def test_at_once(self):
        """
        At the start, at most C{at_once} workers load at a time: the next
        starts when one serves (its check of storage left running), or
        ended before it did (or could not be started: it waits for its
        back-off, and another starts meanwhile).
        """
        failing = {3}

        def commands(number):
            if number in failing:
                failing.discard(number)
                raise StartFailed("no such file")
            return command(number)
        supervisor, reactor, log, ready = _supervisor(4, commands, back_off=(1.0,), at_once=1)
        supervisor.start()

        def started():
            return [p.command.args[-1] for p in reactor.spawned]
        self.assertEqual(started(), ["--worker=1"])
        reactor.spawned[0].say(READY_FD, b"serving\n")
        self.assertEqual(started(), ["--worker=1", "--worker=2"])
        self.assertEqual(supervisor.up(), 0, "serving, not ready: not up")
        reactor.spawned[0].say(READY_FD, b"alive\nready\n")
        self.assertEqual(supervisor.up(), 1)
        # (worker 2 ends before it serves; 3 cannot be started: 4 starts)
        reactor.spawned[1].end("exited with status 1")
        self.assertEqual(started(), ["--worker=1", "--worker=2", "--worker=4"])
        reactor.advance(1.0)
        self.assertEqual(sorted(started()), ["--worker=1", "--worker=2", "--worker=2",
                                             "--worker=3", "--worker=4"])
        self.assertEqual(ready, [])
        for process in reactor.spawned[2:]:
            process.say(READY_FD, b"ready\n")
        self.assertEqual(ready, [True])

    def test_first_alone(self):
        """The first worker loads alone; then C{at_once} load together."""
        supervisor, reactor, log, ready = _supervisor(4, command, at_once=2)
        supervisor.start()

        def started():
            return [p.command.args[-1] for p in reactor.spawned]
        self.assertEqual(started(), ["--worker=1"])
        reactor.spawned[0].say(READY_FD, b"ready\n")
        self.assertEqual(started(), ["--worker=1", "--worker=2", "--worker=3"])
        reactor.spawned[2].say(READY_FD, b"ready\n")
        self.assertEqual(started(), ["--worker=1", "--worker=2", "--worker=3", "--worker=4"])

    def test_restart_loads_in_turn(self):
        """
        A worker started again while the machine still starts loads in the
        others' turn: the next first start waits for it as for any load
        (the first worker's again, alone).
        """
        supervisor, reactor, log, ready = _supervisor(3, command, back_off=(1.0,), at_once=1)
        supervisor.start()

        def started():
            return [p.command.args[-1] for p in reactor.spawned]
        reactor.spawned[0].say(READY_FD, b"serving\n")
        self.assertEqual(started(), ["--worker=1", "--worker=2"])
        reactor.spawned[0].end("killed by SIGKILL")
        reactor.advance(1.0)
        self.assertEqual(started(), ["--worker=1", "--worker=2", "--worker=1"])
        reactor.spawned[1].say(READY_FD, b"serving\n")
        self.assertEqual(len(reactor.spawned), 3, "worker 1 loads again: 3 waits")
        reactor.spawned[2].say(READY_FD, b"serving\n")
        self.assertEqual(started()[-1], "--worker=3")

    def test_restart_back_off(self):
        """
        A worker that ends is started again after the back-off, longer each
        time it ends soon after its start; a steady run starts it anew.
        """
        self.process(1).end("killed by SIGKILL")
        self.assertEqual("Worker 1 ended (killed by SIGKILL) after 0 s; starting it again in 1 s",
                         self.log[-1])
        self.reactor.advance(0.9)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(0.1)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.process(1, 1).end()
        self.reactor.advance(1.9)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.reactor.advance(0.1)
        self.process(1, 2).end()
        self.reactor.advance(5)
        self.process(1, 3).end()
        self.reactor.advance(4.9)
        self.assertEqual(len(self.reactor.spawned), 5, "the back-off's last, again")
        self.reactor.advance(0.1)
        self.assertEqual(len(self.reactor.spawned), 6)
        self.reactor.advance(60)
        self.process(1, 4).end()
        self.reactor.advance(1)
        self.assertEqual(len(self.reactor.spawned), 7, "after a steady run: 1 s again")
        self.assertEqual(self.supervisor.restarts, 5)

    def test_changes(self):
        """
        C{on_change} hears each worker ready and each one that ended, and
        L{Supervisor.up} counts those running and ready; a command that
        cannot be made is that start's failure, tried again after the back-off.
        """
        heard = []
        failing = [True]

        def maybe(number):
            if number == 2 and failing and failing.pop():
                raise StartFailed("Cannot listen on tcp:8080: taken")
            return command(number)
        supervisor, reactor, log, ready = _supervisor(
            2, maybe, back_off=(1.0,),
            on_change=lambda number, up: heard.append((number, up)))
        supervisor.start()
        self.assertIn("Cannot start worker 2: Cannot listen on tcp:8080: taken", log)
        self.assertEqual(len(reactor.spawned), 1)
        reactor.advance(1)
        self.assertEqual(len(reactor.spawned), 2)
        first, second = reactor.spawned
        first.say(READY_FD, b"ready\n")
        second.say(READY_FD, b"ready\n")
        self.assertEqual(supervisor.up(), 2)
        first.end("killed by SIGKILL")
        self.assertEqual(supervisor.up(), 1)
        self.assertEqual(heard, [(1, True), (2, True), (1, False)])

    def test_hung(self):
        """
        A ready worker that goes C{hang_after} seconds without a beat is
        hung: taken out of its sockets (C{on_hung}), killed, and started
        again as any worker that ended; one that beats is left alone.
        """
        hung, heard = [], []
        supervisor, reactor, log, ready = _supervisor(
            2, command, back_off=(1.0,), hang_after=10.0,
            on_hung=hung.append,
            on_change=lambda number, up: heard.append((number, up)))
        supervisor.start()
        first, second = reactor.spawned
        for process in (first, second):
            process.say(READY_FD, b"ready\n")
        for _ in range(9):
            reactor.advance(1)
            first.say(READY_FD, b"alive\n")
            second.say(READY_FD, b"alive\n")
        # (worker 2 stops: stopped, deadlocked, its reactor held)
        for _ in range(10):
            reactor.advance(1)
            first.say(READY_FD, b"alive\n")
        self.assertEqual((first.signals, second.signals), ([], [signal.SIGKILL]))
        self.assertEqual(hung, [2])
        self.assertEqual(supervisor.hangs, 1)
        self.assertIn(f"Worker 2 sent nothing for 10 s: it hangs; killing it (process "
                      f"{second.pid})", log)
        # (a late beat of the killed worker, read before its end, counts for nothing)
        before = list(heard)
        second.say(READY_FD, b"alive\n")
        self.assertEqual((heard, supervisor.hangs), (before, 1))
        second.end("killed by SIGKILL")
        self.assertEqual(supervisor.up(), 1)
        self.assertEqual(heard[-1], (2, False))
        reactor.advance(1)
        third = reactor.spawned[-1]
        self.assertEqual(len(reactor.spawned), 3)
        # (a worker that has said nothing yet is judged only after FIRST_WORD)
        for _ in range(30):
            reactor.advance(1)
            first.say(READY_FD, b"alive\n")
        self.assertEqual((first.signals, third.signals, hung), ([], [], [2]))
        third.say(READY_FD, b"ready\n")
        self.assertEqual(supervisor.up(), 2)
        self.assertEqual(_ended_all(supervisor, first, third), [True])
        reactor.advance(60)
        self.assertEqual(third.signals, [signal.SIGTERM], "not watched once stopping")

    def test_hung_while_loading(self):
        """
        A worker beats while it loads, before it serves: that neither lets
        the next start nor counts it up, but a loading worker that goes
        C{hang_after} seconds without a beat is hung, as is one that says
        nothing for L{FIRST_WORD} seconds after its start; both are killed
        and started again, and the next worker starts meanwhile.
        """
        hung = []
        supervisor, reactor, log, ready = _supervisor(
            3, command, back_off=(1.0,), hang_after=10.0, at_once=1, on_hung=hung.append)
        supervisor.start()
        [first] = reactor.spawned
        for _ in range(20):
            reactor.advance(1)
            first.say(READY_FD, b"alive\n")
        self.assertEqual((len(reactor.spawned), supervisor.up(), first.signals), (1, 0, []))
        reactor.advance(10)
        self.assertEqual((first.signals, hung), ([signal.SIGKILL], [1]))
        self.assertIn(f"Worker 1 sent nothing for 10 s: it hangs while it starts; killing it "
                      f"(process {first.pid})", log)
        first.end("killed by SIGKILL")
        # (worker 2 starts now that 1 loads no more; 1 again after its back-off)
        self.assertEqual([p.command.args[-1] for p in reactor.spawned],
                         ["--worker=1", "--worker=2"])
        second = reactor.spawned[-1]
        reactor.advance(FIRST_WORD - 0.5)
        self.assertEqual(second.signals, [])
        reactor.advance(0.5)
        self.assertEqual((second.signals, hung), ([signal.SIGKILL], [1, 2]))
        self.assertIn(f"Worker 2 sent nothing for {FIRST_WORD:g} s: it hangs while it starts; "
                      f"killing it (process {second.pid})", log)

    def test_loading_leeway(self):
        """
        A loading worker may go L{LOADING_AFTER} seconds without a beat
        when C{hang_after} is shorter (its load holds its reactor at
        times); once it serves, C{hang_after}.
        """
        hung = []
        supervisor, reactor, log, ready = _supervisor(1, command, hang_after=3.0,
                                                      on_hung=hung.append)
        supervisor.start()
        [worker] = reactor.spawned
        worker.say(READY_FD, b"alive\n")
        reactor.advance(LOADING_AFTER - 0.5)
        self.assertEqual(hung, [])
        worker.say(READY_FD, b"serving\n")
        reactor.advance(3.0)
        self.assertEqual((hung, worker.signals), ([1], [signal.SIGKILL]))

    def test_draining(self):
        """
        A worker that says it drains (it stops on its own) is taken out of
        its groups at once, and again while it is the only one listening;
        its beats do not put it back, it is not up, and a drain that hangs
        is killed.
        """
        silent, hung = [], []
        supervisor, reactor, log, ready = _supervisor(
            2, command, hang_after=10.0, silent_after=1.0, on_hung=hung.append,
            on_silent=lambda number, out: silent.append((number, out)))
        supervisor.start()
        first, second = reactor.spawned
        for process in (first, second):
            process.say(READY_FD, b"serving\nready\n")
        self.assertEqual(supervisor.up(), 2)
        second.say(READY_FD, b"draining\n")
        self.assertEqual((silent, supervisor.up()), ([(2, True)], 1))
        self.assertIn("Worker 2 stops: no new connection goes to it", log)
        for _ in range(6):
            reactor.advance(0.5)
            first.say(READY_FD, b"alive\n")
            second.say(READY_FD, b"alive\n")
        self.assertEqual(silent, [(2, True)] * 4)
        self.assertEqual((supervisor.up(), hung), (1, []))
        for _ in range(20):
            reactor.advance(0.5)
            first.say(READY_FD, b"alive\n")
        self.assertEqual(hung, [2])
        second.end("killed by SIGKILL")
        before = list(silent)
        for _ in range(4):
            reactor.advance(0.5)
            first.say(READY_FD, b"alive\n")
        self.assertEqual(silent, before, "once it ended, it is not taken out again")

    def test_silent(self):
        """
        A serving worker silent for C{silent_after} seconds is taken out
        (C{on_silent(number, True)}), not counted as up, until it beats
        again (C{False}), and killed only after C{hang_after}.
        """
        heard = []
        supervisor, reactor, log, ready = _supervisor(
            2, command, hang_after=10.0, silent_after=1.0,
            on_silent=lambda number, silent: heard.append((number, silent)))
        supervisor.start()
        first, second = reactor.spawned
        reactor.advance(5)
        first.say(READY_FD, b"serving\nready\n")
        second.say(READY_FD, b"serving\n")
        for _ in range(8):
            reactor.advance(0.25)
            first.say(READY_FD, b"alive\n")
            second.say(READY_FD, b"alive\n")
        second.say(READY_FD, b"ready\n")
        self.assertEqual((heard, supervisor.up()), ([], 2))
        # (worker 2 stalls 3 s: out after 1 s, back at its next beat)
        for _ in range(12):
            reactor.advance(0.25)
            first.say(READY_FD, b"alive\n")
        # (taken out again each second while silent: another may listen now)
        self.assertEqual((heard, supervisor.up()), ([(2, True)] * 3, 1))
        second.say(READY_FD, b"alive\n")
        self.assertEqual((heard[3:], supervisor.up()), ([(2, False)], 2))
        self.assertEqual((supervisor.silences, supervisor.hangs), (1, 0), "one silence counted")
        del heard[:]
        lines = log
        self.assertIn("Worker 2 sent nothing for 1 s: no new connection goes to it until it "
                      "beats again, where another worker listens (killed after 10 s)", lines)
        self.assertIn("Worker 2 beats again after 3.0 s: new connections go to it again", lines)
        self.assertEqual((first.signals, second.signals), ([], []))
        # (silent for good: out, then killed, and nothing more said of it)
        for _ in range(40):
            reactor.advance(0.25)
            first.say(READY_FD, b"alive\n")
        self.assertEqual(set(heard), {(2, True)})
        self.assertEqual((first.signals, second.signals), ([], [signal.SIGKILL]))
        self.assertEqual((supervisor.silences, supervisor.hangs), (2, 1))
        second.say(READY_FD, b"alive\n")
        second.end("killed by SIGKILL")
        self.assertEqual((set(heard), supervisor.up()), ({(2, True)}, 1))
        told = len(heard)
        for _ in range(20):
            reactor.advance(0.25)
            first.say(READY_FD, b"alive\n")
        self.assertEqual(len(heard), told, "an ended worker is not taken out")
        third = reactor.spawned[-1]
        stopping = []
        supervisor.stop(lambda: stopping.append(True))
        # (beats read while the workers drain start no watch)
        for _ in range(60):
            reactor.advance(0.25)
            first.say(READY_FD, b"alive\n")
            third.say(READY_FD, b"serving\n")
        self.assertEqual((first.signals, third.signals, len(heard)),
                         ([signal.SIGTERM], [signal.SIGTERM], told))
        first.end()
        third.end()
        self.assertEqual(stopping, [True])

    def test_older_worker(self):
        """
        A worker of before the word C{serving} (its first line C{ready},
        then a beat a second) is watched for its hang only: its port would
        end if its socket were shut.
        """
        heard = []
        supervisor, reactor, log, ready = _supervisor(
            1, command, hang_after=10.0, silent_after=1.0,
            on_silent=lambda number, silent: heard.append((number, silent)))
        supervisor.start()
        [worker] = reactor.spawned
        worker.say(READY_FD, b"ready\n")
        self.assertEqual(ready, [True])
        for _ in range(20):
            reactor.advance(1.0)
            worker.say(READY_FD, b"alive\n")
        self.assertEqual((heard, worker.signals, supervisor.up()), ([], [], 1))
        reactor.advance(10)
        self.assertEqual((heard, worker.signals), ([], [signal.SIGKILL]))
        self.assertEqual(_ended_all(supervisor, worker), [True])

    def test_signals(self):
        """A signal goes to every worker running."""
        self.supervisor.signal_all(signal.SIGHUP)
        self.assertEqual([self.process(n).signals for n in (1, 2)],
                         [[signal.SIGHUP], [signal.SIGHUP]])

    def test_stop(self):
        """
        The stop sends SIGTERM to every worker and ends once all ended, not
        starting them again; one still running at the deadline is killed.
        """
        d = []
        self.supervisor.stop(lambda: d.append(True))
        self.assertEqual(self.process(1).signals, [signal.SIGTERM])
        self.process(1).end()
        self.assertEqual(d, [])
        self.reactor.advance(30)
        self.assertEqual(self.process(2).signals, [signal.SIGTERM, signal.SIGKILL])
        self.process(2).end("killed by SIGKILL")
        self.assertEqual(d, [True])
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_stop_while_waiting(self):
        """A worker waiting for its back-off is not started again once stopped."""
        self.process(1).end()
        self.assertEqual(_ended_all(self.supervisor, self.process(2)), [True])
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)


#: A worker in a real process: says a line, says it is ready, waits for a
#: signal (SIGTERM ends it as Python does).
_WORKER = """
import os, signal, sys
print("hello from", sys.argv[1], flush=True)
os.write(3, b"ready\\n")
signal.pause()
"""


class RealProcessTests(SynchronousTestCase):
    """The supervisor with real worker processes, on the lean supervisor's loop."""

    def test_start_ready_stop(self):
        """
        Two real workers start, say their lines and that they are ready on
        their descriptor, and stop; the end of each is heard once reaped.
        """
        def real(number):
            return Command(sys.executable, (sys.executable, "-c", _WORKER, str(number)),
                           dict(os.environ))
        loop = Loop()
        self.addCleanup(loop.close)
        processes = Processes(loop)
        log = _Log()
        ended = []
        supervisor = Supervisor(loop, processes.spawn, 2, real, log,
                                on_ready=lambda: supervisor.stop(loop.stop),
                                on_change=lambda number, up: ended.append((number, up)))
        supervisor.start()
        loop.callLater(60, loop.stop)
        loop.run()
        self.assertIn("worker 1: hello from 1", log)
        self.assertIn("worker 2: hello from 2", log)
        self.assertEqual(sorted(ended), [(1, False), (1, True), (2, False), (2, True)])
        self.assertEqual(supervisor.restarts, 0)
