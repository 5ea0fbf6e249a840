"""Training images decoded ahead of use in worker threads (Kohya's max_data_loader_n_workers).

Decoding and resizing (dataset.images.decode_resized) draws no random numbers, so it can run in
any thread in any order; the crop, which may draw a random offset, stays in the training thread
in its original order. Loading with N workers therefore gives exactly the pixels 0 workers give.
Threads rather than processes: PIL releases the GIL while it decodes and resizes, nothing has to
be pickled, and CUDA is never touched by a worker.

With `persistent`, the same threads serve every epoch; otherwise they stop at the end of each
epoch and new ones start with the next, as torch's DataLoader does with its worker processes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..dataset.images import ResizedImage, decode_resized
from ..dataset.scan import ImageItem

THREAD_PREFIX = "tui-lora-image"


def decode_item(item: ImageItem) -> ResizedImage:
    return decode_resized(item.path, tuple(item.bucket), resized_size=tuple(item.resized_size))


class ImageLoader:
    def __init__(self, workers: int, *, persistent: bool = False):
        self.workers = max(0, int(workers))
        self.persistent = persistent
        self._pool: ThreadPoolExecutor | None = None
        self._items: Sequence[ImageItem] = ()
        self._batches: Sequence[Sequence] = ()
        self._position: dict[int, int] = {}
        self._pending: dict[int, list[Future]] = {}
        self.pools_started = 0

    # -- the epoch's batches -------------------------------------------------------------------
    def start_epoch(self, items: Sequence[ImageItem], batches: Sequence[Sequence]) -> None:
        """The batches (lists of draws with `item_index`) this epoch will ask for, in order."""
        self._cancel_pending()
        self._items, self._batches = items, batches
        self._position = {id(batch): index for index, batch in enumerate(batches)}

    def images_for(self, batch: Sequence) -> list[ResizedImage]:
        """The decoded images of one of the epoch's batches, in draw order; queues the next ones."""
        index = self._position.get(id(batch))
        if not self.workers or index is None:
            return [decode_item(self._items[draw.item_index]) for draw in batch]
        batch_size = max(1, len(batch))
        ahead = max(1, math.ceil(2 * self.workers / batch_size))  # about two images per worker in flight
        for upcoming in range(index, min(index + 1 + ahead, len(self._batches))):
            if upcoming not in self._pending:
                pool = self._executor()
                self._pending[upcoming] = [pool.submit(decode_item, self._items[draw.item_index])
                                           for draw in self._batches[upcoming]]
        for stale in [i for i in self._pending if i < index]:  # skipped batches (resume, stop)
            for future in self._pending.pop(stale):
                future.cancel()
        return [future.result() for future in self._pending.pop(index)]

    def end_epoch(self) -> None:
        self._cancel_pending()
        if not self.persistent:
            self._shutdown()

    # -- a single pass over items (the latent cache) -------------------------------------------
    def each(self, items: Iterable[ImageItem]) -> Iterator[ResizedImage]:
        """Decoded images of `items` in order, a few ahead of the consumer."""
        if not self.workers:
            for item in items:
                yield decode_item(item)
            return
        pool = self._executor()
        window: deque[Future] = deque()
        for item in items:
            window.append(pool.submit(decode_item, item))
            if len(window) > 2 * self.workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def close(self) -> None:
        self._cancel_pending()
        self._shutdown()

    # -- internals -----------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=THREAD_PREFIX)
            self.pools_started += 1
        return self._pool

    def _cancel_pending(self) -> None:
        for futures in self._pending.values():
            for future in futures:
                future.cancel()
        self._pending.clear()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
