"""The FSDP / ZeRO-3 presets are valid accelerate configs of the intended shape, and jobs launch with them."""
from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from core.config import TrainConfig
from core.training.sharding import (
    Rendezvous, ShardingPreset, accelerate_config_file, accelerate_launch_arguments,
)
from jobs.processes import worker_command
from jobs.spec_checks import JobConfigError
from jobs.specs import parse_train, sharding_config_file


def test_fsdp_preset_shards_everything_per_decoder_layer():
    config = load_config_from_file(str(ShardingPreset.FSDP.path))  # what `accelerate launch` reads
    assert config.distributed_type.value == "FSDP" and config.mixed_precision == "bf16"
    fsdp = config.fsdp_config
    assert fsdp["fsdp_version"] == 2  # per-parameter shards: bf16 base and fp32 experts in one unit
    assert fsdp["fsdp_reshard_after_forward"] is True  # FULL_SHARD in FSDP2's terms
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp  # accelerate wraps _no_split_modules
    assert fsdp["fsdp_offload_params"] is False


def test_zero3_preset_partitions_parameters():
    config = load_config_from_file(str(ShardingPreset.DEEPSPEED_ZERO3.path))
    assert config.distributed_type.value == "DEEPSPEED"
    assert config.deepspeed_config["zero_stage"] == 3 and config.mixed_precision == "bf16"


def test_setting_resolves_presets_and_files_and_refuses_others(tmp_path):
    assert accelerate_config_file(None) is None
    assert accelerate_config_file("fsdp") == ShardingPreset.FSDP.path.resolve()
    own = tmp_path / "lab.yaml"
    own.write_text(ShardingPreset.DEEPSPEED_ZERO3.path.read_text())
    assert accelerate_config_file(str(own)) == own.resolve()
    with pytest.raises(ValueError, match="no such file"):
        accelerate_config_file("fsdp2")
    plain = tmp_path / "ddp.yaml"
    plain.write_text("distributed_type: MULTI_GPU\n")
    with pytest.raises(ValueError, match="not an FSDP or DeepSpeed"):
        accelerate_config_file(str(plain))


def test_a_train_job_with_a_bad_preset_fails_at_submit():
    with pytest.raises(JobConfigError, match="accelerate_config"):
        parse_train({"mote": {"train": {"accelerate_config": "nope"}}}, chains_required=False)
    fsdp_job = {"mote": {"train": {"accelerate_config": "fsdp"}}}
    assert sharding_config_file("train", fsdp_job) == ShardingPreset.FSDP.path.resolve()
    assert sharding_config_file("train", {"mote": {}}) is None
    assert TrainConfig().accelerate_config is None  # plain DDP unless asked


def test_worker_command_passes_the_config_file(tmp_path):
    command = worker_command(7, db_url=None, home=tmp_path, num_processes=4, main_process_port=29600,
                             config_file=ShardingPreset.FSDP.path)
    start = command.index("--config_file")
    assert command[start:start + 8] == ["--config_file", str(ShardingPreset.FSDP.path), "--num_processes", "4",
                                        "--num_machines", "1", "--main_process_port", "29600"]
    assert "--multi_gpu" not in command  # the config file says FSDP


def test_multi_node_arguments_count_processes_over_all_machines():
    rank1 = Rendezvous(num_machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29500)
    args = accelerate_launch_arguments(8, config_file=ShardingPreset.FSDP.path, rendezvous=rank1)
    assert args[2:] == ["--num_processes", "16", "--num_machines", "2", "--machine_rank", "1",
                        "--main_process_ip", "10.0.0.1", "--main_process_port", "29500"]
    with pytest.raises(ValueError, match="main_process_ip"):
        Rendezvous(num_machines=2, machine_rank=0)
    with pytest.raises(ValueError, match="machine_rank"):
        Rendezvous(num_machines=2, machine_rank=2, main_process_ip="h", main_process_port=1)


def test_close_process_group_ends_a_started_group_and_is_a_no_op_without_one():
    import torch.distributed as dist

    from core.training.process_group import close_process_group
    from tests.multiprocess import rendezvous_port

    close_process_group()  # nothing started: nothing to do
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{rendezvous_port()}", rank=0, world_size=1)
    assert dist.is_initialized()
    close_process_group()
    assert not dist.is_initialized()


@pytest.mark.parametrize("world_size", ["1", "2"])
def test_exit_process_keeps_the_exit_code_and_what_was_printed(world_size, tmp_path):
    import os
    import subprocess
    import sys

    code = "from core.training.process_group import exit_process\nprint('results written', flush=False)\nexit_process(3)\n"
    env = {**os.environ, "WORLD_SIZE": world_size, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "results written\n"
