# Sourced by the scripts that train several runs side by side on one GPU: makes the training data
# (make_training_data.sh) in $work, caches it once for every run ($work/cache), sets `data` to its folders and, with
# DEADLINE_EPOCH, `minutes` to the time left before it less a minute.
"$(dirname "${BASH_SOURCE[0]}")/make_training_data.sh" "$work"
data=("$work/ctmri" "$work/multiphase" "$work/real")
python3 -c "
import sys; from pathlib import Path
from liverfusion.training.dataset import cache_all, find_cases
cache_all(find_cases([Path(d) for d in sys.argv[1:]]), Path('$work/cache'), (3.0, 3.0, 3.0), $(nproc))" "${data[@]}"
if [ -n "${DEADLINE_EPOCH:-}" ]; then
  minutes=$(python3 -c "import time; print(round(($DEADLINE_EPOCH - time.time() - 60) / 60, 2))")
fi
