"""Overlapped stages over a stream: each stage in its own thread, bounded queues between.

``overlapped(source, stages)`` yields ``stages[-1](...stages[0](item))`` for every item of
``source``, in order. The first thread iterates ``source`` and applies ``stages[0]``;
each further stage has a thread of its own; the caller's thread consumes the results.
With reading in the first stage and the kernel (which releases the GIL) in the second,
reading the next batch and writing the previous one overlap the kernel, and at most
``depth`` items wait between two stages, so memory stays bounded.

An exception in any stage (or in ``source``) is raised in the consumer; when the consumer
stops early (``close()``, an exception, Ctrl-C) the threads are told to stop, and the
consumer waits for them to return at their next hand-over.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, List, Sequence

_DONE = object()
_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def overlapped(source: Iterable[Any], stages: Sequence[Callable[[Any], Any]],
               depth: int = 2) -> Iterator[Any]:
    """Results of the stages applied to each item of ``source``, in order."""
    stop = threading.Event()
    queues: List["queue.Queue[Any]"] = [queue.Queue(maxsize=depth) for _ in stages]

    def put(q: "queue.Queue[Any]", item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(q: "queue.Queue[Any]") -> Any:
        while True:
            try:
                return q.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if stop.is_set():
                    return _DONE

    def first() -> None:
        items = iter(source)
        try:
            for item in items:
                if stop.is_set() or not put(queues[0], stages[0](item)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(queues[0], _Failure(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(queues[0], _DONE)

    def later(index: int) -> None:
        inbox, outbox, stage = queues[index - 1], queues[index], stages[index]
        while True:
            item = get(inbox)
            if item is _DONE or isinstance(item, _Failure):
                put(outbox, item)
                return
            try:
                result = stage(item)
            except BaseException as exc:
                put(outbox, _Failure(exc))
                return
            if not put(outbox, result):
                return

    threads = [threading.Thread(target=first, name="treelens-stage-0", daemon=True)]
    threads += [threading.Thread(target=later, args=(i,), name=f"treelens-stage-{i}",
                                 daemon=True) for i in range(1, len(stages))]
    for thread in threads:
        thread.start()
    try:
        while True:
            item = get(queues[-1])
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        # Wait for the stages: a thread left inside a native call while the interpreter
        # exits (after Ctrl-C) would abort the process. Each returns at its next hand-over.
        stop.set()
        for thread in threads:
            thread.join()
