"""The live watch's file events (engine.watch.events): what wakes it, and what it is told changed."""
from __future__ import annotations

import threading

from watchdog.events import FileCreatedEvent

from engine.watch.events import _Wake


def test_a_file_event_coming_while_the_watch_takes_the_changes_is_kept_for_its_next_look():
    """The loop asks whether anything but a trainer log changed (a look, then a clear): a sample
    file's event landing between the two was cleared unseen, its wake-up taken for a log's
    write, and the checkpoint it brought waited for the 30 s rescan."""
    wake = _Wake(threading.Event(), lambda path: False, "/run")
    came: list[bool] = []

    class EventDuringTheLook(threading.Event):
        def is_set(self) -> bool:
            seen = super().is_set()
            if not came:  # the trainer's write comes right after the look
                came.append(True)
                wake.on_any_event(FileCreatedEvent("/run/step_100/00000.png"))
            return seen

    wake._other = EventDuringTheLook()
    assert [wake.take_other_changes(), wake.take_other_changes(), wake.take_other_changes()] == [False, True, False]
    assert wake.flag.is_set()
