"""Nodes of the simulated cluster from a YAML file or --node flags, and the default topology."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest

from gpuctl_async.sim.topology import (
    build_node,
    default_nodes,
    load_nodes,
    parse_node_flag,
)

from .helpers import kubectl_path, stop_process


def test_default_topology_is_four_gpu_nodes_in_two_pools_and_the_default():
    nodes = {n["metadata"]["name"]: n for n in default_nodes()}
    pools = {name: n["metadata"]["labels"].get("runwhere.ai/pool") for name, n in nodes.items()}
    assert pools == {"train-a100-0": "training-pool", "train-a100-1": "training-pool",
                     "infer-t4-0": "inference-pool", "general-l4-0": None}
    gpus = {name: n["status"]["capacity"]["nvidia.com/gpu"] for name, n in nodes.items()}
    assert gpus == {"train-a100-0": "8", "train-a100-1": "8", "infer-t4-0": "4",
                    "general-l4-0": "2"}
    for node in nodes.values():
        labels = node["metadata"]["labels"]
        assert labels["runwhere.ai/gpu-type"] and labels["nvidia.com/gpu.product"]
        assert any(a["type"] == "InternalIP" for a in node["status"]["addresses"])
        assert {"type": "Ready", "status": "True"}.items() <= next(
            c for c in node["status"]["conditions"] if c["type"] == "Ready").items()


def test_nodes_file_takes_short_forms_and_whole_node_objects(tmp_path):
    whole = build_node(parse_node_flag("name=raw-0,gpus=1"), 0)
    path = tmp_path / "nodes.yaml"
    path.write_text(
        "- {name: h100-0, pool: big, gpuType: h100, gpus: 8, cpu: 96, memoryGi: 768}\n"
        f"- {{kind: Node, apiVersion: v1, metadata: {{name: {whole['metadata']['name']}}}}}\n")
    first, second = load_nodes(path)
    assert first["metadata"]["labels"]["runwhere.ai/pool"] == "big"
    assert first["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert second["metadata"]["name"] == "raw-0"


@pytest.mark.parametrize("text, problem", [("gpus", "key=value"), ("name=x,colour=red", "colour")])
def test_bad_node_flags_are_refused(text, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        parse_node_flag(text)


async def test_standalone_sim_registers_the_nodes_it_is_given(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text("- {name: file-0, pool: p, gpuType: a100, gpus: 4}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async.sim", "--port", "0", "--nodes", str(path),
        "--node", "name=flag-0,gpus=2", "--kubeconfig-out", str(tmp_path / "kubeconfig"),
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        url = re.search(r"(http://\S+)", line).group(1)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/api/v1/nodes") as response:
                names = [n["metadata"]["name"] for n in (await response.json())["items"]]
        assert sorted(names) == ["file-0", "flag-0"]  # instead of the default topology
        kubectl = await asyncio.create_subprocess_exec(
            kubectl_path(), "--kubeconfig", str(tmp_path / "kubeconfig"), "--cache-dir",
            str(tmp_path / "cache"), "get", "nodes", "-o", "name",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(kubectl.communicate(), 30)
        assert sorted(out.decode().split()) == ["node/file-0", "node/flag-0"]
    finally:
        await stop_process(process)
