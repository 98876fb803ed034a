"""scikit-learn estimators on aekit's model, presets and trainer (no second training loop).

:class:`AutoencoderTransformer` behaves like :class:`~sklearn.decomposition.PCA`;
:class:`AutoencoderOutlierDetector` like :class:`~sklearn.ensemble.IsolationForest`;
:class:`SeriesOutlierDetector` scores each time step of a series (its rows are steps).
Every option left at ``None`` takes the preset's default (see ``aekit presets``), adapted to the data:
the code size (``n_components="auto"``), hidden widths, k, batch size and epochs follow the rule of
:mod:`aekit.training.autosize`, so a 6-feature table of 300 rows trains a small network briefly and MNIST a
large one; ``options_`` records what was used.

Scaling: the estimators do not rescale ``X``. The default ``likelihood="gaussian"`` suits any
real-valued (e.g. standardised) data; ``likelihood="bernoulli"`` needs data in [0, 1] and says so
otherwise. With a VAE and grey-level data in [0, 1], ``score_samples`` is the ELBO under the
Bernoulli cross-entropy (a ranking score, not log p(x)).

Data larger than memory: wherever ``X`` is taken, it may also be a ``.npy`` path, a shard directory,
rows (:func:`aekit.store.rows.open_rows`, e.g. a Hugging Face dataset column) or an ``np.memmap``: ``fit``
streams it (``shuffle_buffer`` sets the shuffle window) and ``transform``/``score_samples``/``predict``
read it a chunk at a time (float32 out); only their output is held in memory.
"""

from ._detector import AutoencoderOutlierDetector
from ._series import SeriesOutlierDetector
from ._transformer import AutoencoderTransformer

__all__ = ["AutoencoderTransformer", "AutoencoderOutlierDetector", "SeriesOutlierDetector"]
