"""The CPU as Linux describes it, on x86-64 and on an Arm board."""

from __future__ import annotations

from edge_opt.infra.cpu import board_model, parse_cpuinfo

PI4 = (
    "\n".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
        "CPU revision\t: 3\n"
        for i in range(4)
    )
    + "\nHardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
)
X86 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
    "flags\t\t: fpu sse2 avx2 fma f16c avx512f avx512_vnni avx512_bf16\n"
)


def test_an_arm_board_is_named_with_its_cores_and_features() -> None:
    cpu = parse_cpuinfo(PI4, "aarch64")
    assert cpu.model == "Raspberry Pi 4 Model B Rev 1.1 (4x Cortex-A72)"
    assert cpu.cores == ("Cortex-A72",) * 4
    assert cpu.isa["asimd"] is True
    assert cpu.isa["asimddp"] is False  # no int8 dot product on the A72
    assert not cpu.native_fp16
    assert cpu.lacks_armv81  # no LSE atomics: an Armv8.0 core
    # The device tree's name, when given, is the board's own.
    assert parse_cpuinfo(PI4, "aarch64", "Raspberry Pi 4 Model B Rev 1.4").board == (
        "Raspberry Pi 4 Model B Rev 1.4"
    )


def test_an_x86_cpu_keeps_its_model_name_and_flags() -> None:
    cpu = parse_cpuinfo(X86, "x86_64")
    assert cpu.model == "AMD EPYC 9R14 96-Core Processor"
    assert cpu.isa["avx512_vnni"] is True
    assert cpu.isa["amx_tile"] is False
    assert "asimd" not in cpu.isa
    assert not cpu.lacks_armv81


def test_the_device_tree_model_is_read_without_its_nul(tmp_path) -> None:
    path = tmp_path / "model"
    path.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    assert board_model(path) == "Raspberry Pi 4 Model B Rev 1.4"
    assert board_model(tmp_path / "missing") is None


def test_an_armv80_core_a_torch_build_cannot_run_on_is_one_sentence() -> None:
    from edge_opt.infra.cpu import armv80_problem

    pi4 = parse_cpuinfo(PI4, "aarch64")
    killed = "import os, signal; os.kill(os.getpid(), signal.SIGILL)  # {threads}"
    problem = armv80_problem(2, pi4, killed)
    assert problem is not None
    assert problem.startswith("this CPU (Cortex-A72, Armv8.0: no LSE atomics) cannot run")
    assert "died with an illegal instruction (SIGILL)" in problem
    assert "\n" not in problem
    assert armv80_problem(2, pi4, "pass  # {threads}") is None  # it ran: nothing to say
    assert armv80_problem(2, parse_cpuinfo(X86, "x86_64"), killed) is None  # not probed
