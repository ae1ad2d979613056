"""Per-epoch logging the DVC way: DVCLive writes dvclive/metrics.json (the last epoch) and one TSV per value under
dvclive/plots/metrics/, which dvc.yaml declares, so `dvc exp show` and `dvc plots show` show loss, lr and throughput
per epoch."""
from __future__ import annotations

FOLDER = "dvclive"


class DvcLiveLog:
    """`log(row, images_per_second)` for the trainer: every number of the row (the loss and its parts, lr, ...) and
    the throughput, one DVCLive step per epoch. The train stage's only logger; `close()` when training ends."""

    def __init__(self, folder: str = FOLDER):
        from dvclive import Live

        self.live = Live(folder, dvcyaml=None, save_dvc_exp=False, report=None)

    def __call__(self, row: dict, images_per_second: float) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.live.log_metric(key, value)
        self.live.log_metric("images_per_second", images_per_second)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()
