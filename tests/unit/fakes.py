"""What several unit test modules build alike: a SLURM cluster as recorded on the mini cluster
(what a user may ask for), a running job as squeue lists it, and alice's spawner without a
scheduler. A helper module, not a test module: the tests import it, never each other."""

from types import SimpleNamespace

from jupyterhub.objects import Hub

from aifactory_workbench.slurm.choices import Association, Choices, partition_limits
from aifactory_workbench.slurm.parsers import JobInfo, parse_pipe_table, parse_scontrol_records
from aifactory_workbench.spawners.services import Services
from aifactory_workbench.spawners.spawner import WorkbenchSpawner

# SLURM 22.05 output recorded on the mini cluster (test_choices.py).
PARTITIONS = parse_scontrol_records(
    "PartitionName=gpp AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=part_gpp "
    "DefaultTime=01:00:00 Hidden=NO MaxNodes=UNLIMITED MaxTime=2-00:00:00 MaxCPUsPerNode=UNLIMITED "
    "Nodes=mn5-n01 RootOnly=NO State=UP TotalCPUs=112 MaxMemPerNode=UNLIMITED "
    "TRES=cpu=112,mem=16000M,node=1,billing=112,gres/gpu=2\n"
    "PartitionName=acc AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=part_acc "
    "DefaultTime=01:00:00 Hidden=NO MaxNodes=UNLIMITED MaxTime=1-00:00:00 MaxCPUsPerNode=80 "
    "Nodes=mn5-n01 RootOnly=NO State=UP TotalCPUs=112 MaxMemPerNode=UNLIMITED "
    "TRES=cpu=112,mem=16000M,node=1,billing=112,gres/gpu=2\n"
)
NODES = parse_scontrol_records(
    "NodeName=mn5-n01 Arch=x86_64 CoresPerSocket=112  CPUAlloc=0 CPUEfctv=112 CPUTot=112 Gres=gpu:2 "
    "NodeAddr=127.0.0.1 OS=Linux 6.18.44 #1 SMP RealMemory=16000 AllocMem=0 State=IDLE Partitions=gpp,acc  "
    "CfgTRES=cpu=112,mem=16000M,billing=112,gres/gpu=2\n"
)
QOS = {
    q["Name"]: q
    for q in parse_pipe_table(
        "normal|2-00:00:00||\ninteractive|12:00:00||\npart_gpp||gres/gpu=0|\npart_acc||gres/gpu=2|\n",
        ("Name", "MaxWall", "MaxTRES", "MaxTRESPerNode"),
    )
}


def choices_for(account="ehpc01", reservations=None):
    parts = {r["PartitionName"]: partition_limits(r, NODES, QOS) for r in PARTITIONS}
    return Choices(
        user="alice",
        partitions=parts,
        associations=(Association(account, "", ("interactive", "normal"), "normal"),),
        default_account=account,
        qos_walltime={"normal": 172800, "interactive": 43200, "part_gpp": None, "part_acc": None},
        reservations=reservations or {},
    )


#: The mini cluster's acc node as ``scontrol show node -o`` shows it with jobs on it (test_room.py).
BUSY_NODE = (
    "NodeName={name} CPUAlloc={cpus} CPUTot=112 Gres=gpu:2 NodeAddr=127.0.0.1 RealMemory=16000 "
    "AllocMem={mem} State={state} Partitions=gpp,acc CfgTRES=cpu=112,mem=16000M,billing=112,gres/gpu=2 "
    "AllocTRES={alloc}"
)


def acc_node(cpus=20, mem=8192, gpus=1, state="MIXED", name="mn5-n01") -> dict[str, str]:
    """The acc node's record while jobs hold ``cpus`` cores, ``mem`` MB and ``gpus`` GPUs of it
    (by default bob's job on the GPU preset: 20 cores, 8G, 1 GPU)."""
    alloc = f"cpu={cpus},mem={mem}M,gres/gpu={gpus}" if cpus else ""
    line = BUSY_NODE.format(name=name, cpus=cpus, mem=mem, state=state, alloc=alloc)
    return parse_scontrol_records(line + "\n")[0]


#: alice's running job as squeue lists it (test_session.py).
RUNNING = JobInfo(
    "7", "RUNNING", "alice", "gpp", "mn5-n01", "None", "2026-11-27T10:00:00", "ehpc01", "2", "4G", "N/A", "1:30:00"
)


VENV = "/opt/aifactory/venv"


def services(**kwargs) -> Services:
    return Services.build(job_name="aifw-unit", poll_interval=10, startup_poll_interval=1, discovery_cache=60, **kwargs)


def new_spawner(**built_with) -> WorkbenchSpawner:
    """alice's spawner with the site's usual settings and its own services (no scheduler, unless
    ``built_with`` gives the services one: ``slurm=FakeSlurm()``)."""
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice", server=None, spawners={})
    s = WorkbenchSpawner(
        user=user,
        hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
        req_partition="gpp",
        req_qos="interactive",
        req_nprocs=1,
        req_memory="2G",
        req_runtime="01:00:00",
        job_name="aifw-jupyterlab",
        singleuser_venv=VENV,
        req_homedir="/home/alice",
        services=services(**built_with),
    )
    s.api_token = "t" * 32
    return s
