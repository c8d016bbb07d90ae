"""Where the pipeline's rows come from: a DataFrame in memory (`FrameRows`) or part files read as a stream
(`StreamRows`), behind one small interface (`Rows`).

The pipeline (`trainer.pipeline`) names rows by their position among the rows with a target value ("local"
positions, 0..n-1, the positions `split_positions` deals out). A source answers four questions about them:

- `gather(positions)`: those rows as a DataFrame in memory, labelled by their positions (for a bounded
  sample: the fit sample of the tree types, the validation rows, the permutation-importance and reference
  rows);
- `blocks(positions)`: those rows in position order, as frames of exactly `BLOCK_ROWS` rows (the last may be
  shorter), for passes whose memory must not grow with the data (test metrics, preprocessing statistics). The
  cut does not depend on how the data was split into parts or batches, so every computation over blocks gives
  the same bits from either source;
- `network_batches(...)`: the network's epochs of mini-batches (`trainer.nn.Batches`): from a design matrix
  in memory, or from a seeded file-and-buffer shuffle of the parts, transformed batch by batch;
- `rows_read`: how many rows the data has (with a target or not).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from trainer.ontology import Column
from trainer.stream import BLOCK_ROWS, DEFAULT_BUFFER_ROWS, PartStream, fixed_blocks, is_increasing


class Rows(Protocol):
    rows_read: int

    def gather(self, positions: np.ndarray) -> pd.DataFrame: ...

    def blocks(self, positions: np.ndarray) -> Iterator[pd.DataFrame]: ...

    def network_batches(self, positions: np.ndarray, y: np.ndarray, preprocessor, seed: int): ...


@dataclass
class FrameRows:
    """The rows with a target value, in memory (`prepare_rows`'s frame)."""

    frame: pd.DataFrame
    rows_read: int

    def gather(self, positions: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[positions]

    def blocks(self, positions: np.ndarray) -> Iterator[pd.DataFrame]:
        for start in range(0, len(positions), BLOCK_ROWS):
            yield self.frame.iloc[positions[start:start + BLOCK_ROWS]]

    def network_batches(self, positions: np.ndarray, y: np.ndarray, preprocessor, seed: int):
        from trainer.nn import ArrayBatches

        return ArrayBatches(transform_blocks(preprocessor, self.blocks(positions)), y, seed)


@dataclass
class StreamRows:
    """The rows of a `PartStream`; `rows[i]` is the stream position of local row i (`Scan.rows`: increasing).
    When every row has a target, local and stream positions are the same and `rows` is dropped (None): 8 bytes
    a row less for the whole run, and no mapped copy of every position set."""

    stream: PartStream
    rows: np.ndarray | None
    buffer_rows: int = DEFAULT_BUFFER_ROWS

    def __post_init__(self) -> None:
        if self.rows is not None and (not len(self.rows) or int(self.rows[-1]) == len(self.rows) - 1):
            self.rows = None  # increasing and distinct, ending at n - 1: exactly 0..n-1

    @property
    def rows_read(self) -> int:
        return self.stream.total_rows

    def _global(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype="int64")
        return positions if self.rows is None else self.rows[positions]

    def gather(self, positions: np.ndarray) -> pd.DataFrame:
        frame = self.stream.gather(self._global(positions))
        frame.index = pd.Index(np.asarray(positions, dtype="int64"))  # local positions, as FrameRows labels them
        return frame

    def blocks(self, positions: np.ndarray) -> Iterator[pd.DataFrame]:
        """In position order: `positions` must be increasing (the split's are)."""
        positions = np.asarray(positions, dtype="int64")
        if not is_increasing(positions):
            raise ValueError("blocks() needs increasing positions")
        yield from fixed_blocks(self.stream.selected(self._global(positions)), BLOCK_ROWS)

    def network_batches(self, positions: np.ndarray, y: np.ndarray, preprocessor, seed: int):
        return StreamBatches(self.stream, self._global(positions), np.asarray(y), preprocessor, seed,
                             self.buffer_rows)


@dataclass
class StreamBatches:
    """`trainer.nn.Batches` over a stream: each epoch is `PartStream.batches_for` (parts in a seeded order,
    rows shuffled within a buffer of `buffer_rows`), transformed by the fitted `preprocessor` one stream batch
    at a time and cut into mini-batches of exactly `batch_size` rows across stream batches. Memory: the buffer,
    one part and one transformed stream batch, whatever the number of rows."""

    stream: PartStream
    positions: np.ndarray  # stream positions of the fit rows, increasing
    y: np.ndarray  # their targets, aligned
    preprocessor: object
    seed: int
    buffer_rows: int = DEFAULT_BUFFER_ROWS

    @property
    def input_dim(self) -> int:
        return len(self.preprocessor.named_steps["encode"].get_feature_names_out())

    def epoch(self, number: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        held = 0
        for selected in self.stream.batches_for(self.positions, self.y, seed=self.seed, epoch=number,
                                                buffer_rows=self.buffer_rows):
            x = design(self.preprocessor, selected.frame)
            y = selected.y
            start = 0
            if held:  # complete the mini-batch the last stream batch left open
                take = min(batch_size - held, len(y))
                pending_x.append(x[:take])
                pending_y.append(y[:take])
                held += take
                start = take
                if held < batch_size:
                    continue
                yield np.concatenate(pending_x), np.concatenate(pending_y)
                pending_x, pending_y, held = [], [], 0
            whole = start + (len(y) - start) // batch_size * batch_size
            for low in range(start, whole, batch_size):
                yield x[low:low + batch_size], y[low:low + batch_size]
            if whole < len(y):
                pending_x, pending_y, held = [x[whole:]], [y[whole:]], len(y) - whole
        if held:
            yield np.concatenate(pending_x), np.concatenate(pending_y)


def network_input(rows: Rows, fit: np.ndarray, y_fit: np.ndarray, features: list[Column], seed: int):
    """The network's fit input from any source: a preprocessor fitted from the fit rows' streamed statistics
    (`trainer.stream_preprocess`) and the epochs of mini-batches (`Rows.network_batches`)."""
    from trainer.models import NetworkInput
    from trainer.stream import statistics_of
    from trainer.stream_preprocess import preprocessor_from_stats

    stats = statistics_of(features, lambda: rows.blocks(fit), seed=seed)
    preprocessor = preprocessor_from_stats(features, stats, scale=True)
    return NetworkInput(preprocessor=preprocessor, batches=rows.network_batches(fit, y_fit, preprocessor, seed))


def design(preprocessor, frame: pd.DataFrame) -> np.ndarray:
    """The network's float32 design rows of `frame`."""
    return np.ascontiguousarray(preprocessor.transform(frame), dtype=np.float32)


def transform_blocks(preprocessor, blocks: Iterator[pd.DataFrame]) -> np.ndarray:
    """The float32 design matrix of the rows of `blocks`, transformed one block at a time."""
    pieces = [design(preprocessor, block) for block in blocks]
    if not pieces:
        return np.zeros((0, len(preprocessor.named_steps["encode"].get_feature_names_out())), dtype=np.float32)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
