"""Datasets: synthetic generators and local CSV/NPZ files, split and standardized with training statistics.

Examples are rows: X (N, D) in the training dtype (float64, or float32 when loaded for float32 training);
y (N,) int64 class labels or (N, K) float64 regression targets. File formats read straight into that dtype
when it holds every stored value; standardization works chunk by chunk (float64 statistics and arithmetic,
in place where the arrays are the loader's own), so float32 training never holds a float64 copy of large data.
No network access ever: every dataset is generated from an explicit rng or read from a local file.

One concept per module: dataset (the Dataset and Split types), synthetic (the generators), csvfile and
npzfile (local files), labels (the task read from labels, the losses that fit it), splitting (validation,
folds, test part, standardization), registry (DATASETS), pipeline (a `data:` section -> Split). This
package's interface is the names below.
"""

from optbench.data.dataset import Dataset, Split
from optbench.data.labels import check_labels, expected_loss
from optbench.data.pipeline import load, resolved_section
from optbench.data.registry import DATASETS
from optbench.data.splitting import check_dtype, split

__all__ = ("DATASETS", "Dataset", "Split", "check_dtype", "check_labels", "expected_loss", "load",
           "resolved_section", "split")
