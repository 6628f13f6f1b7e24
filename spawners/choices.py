"""The spawn form's choices: their rules live in :mod:`aifactory_workbench.slurm.choices`, which
the user's JupyterLab (lab/, the notebook-job dialog) applies too; the spawners' names for them."""

from aifactory_workbench.slurm.choices import (
    Association as Association,
)
from aifactory_workbench.slurm.choices import (
    Choices as Choices,
)
from aifactory_workbench.slurm.choices import (
    ClusterRecords as ClusterRecords,
)
from aifactory_workbench.slurm.choices import (
    Partition as Partition,
)
from aifactory_workbench.slurm.choices import (
    Reservation as Reservation,
)
from aifactory_workbench.slurm.choices import (
    choices_from as choices_from,
)
from aifactory_workbench.slurm.choices import (
    node_names as node_names,
)
from aifactory_workbench.slurm.choices import (
    partition_limits as partition_limits,
)
from aifactory_workbench.slurm.choices import (
    partition_nodes as partition_nodes,
)
