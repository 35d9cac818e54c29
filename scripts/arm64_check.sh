#!/bin/bash
# Check that edge-opt installs and runs on arm64 (Raspberry Pi OS 64-bit = Debian 12 arm64),
# on an x86-64 Debian host, under QEMU user-mode emulation. Not part of `make test`: it is slow
# (about an hour: debootstrap, a pip install under emulation, a run, the tests).
#
#   sudo scripts/arm64_check.sh [BASE]      # BASE: ${TMPDIR:-/tmp}/edge-opt-arm64
#   sudo scripts/arm64_check.sh [BASE] down # unmount what it mounted
#
# TIMINGS UNDER EMULATION MEAN NOTHING: every latency this prints is QEMU's, not an Arm core's.
#
# What it does, from Debian's packages (qemu-user-static, debootstrap, binfmt-support):
#  1. builds a Debian 12 arm64 userland and clones this checkout's committed state into it;
#  2. installs edge-opt there as docs/install.md says for an Arm board (a venv,
#     `pip install -c constraints.txt -e '.[executorch]'`, plus pytest for step 5);
#  3. on an emulated Cortex-A72 (a Raspberry Pi 4 core, Armv8.0): `edge-opt validate` must
#     refuse the config in one line when the torch build needs Armv8.1 with the default two
#     threads, then the quick config runs single-threaded (train_threads and benchmark_threads
#     1, OMP_NUM_THREADS=1);
#  4. on an emulated Cortex-A76 (a Raspberry Pi 5 core, Armv8.2): the quick config runs as
#     shipped, with `device: auto`;
#  5. runs the quantization and runtime tests there (tests/compress, tests/runtimes).
# It checks that each run completed, that its int8 candidates were built with the qnnpack
# engine, and that the environment describes an Arm CPU; it ends with PASS or FAIL.
#
# Two emulation artefacts are worked around: qemu-user shows the guest the host's x86
# /proc/cpuinfo (torch's cpuinfo then crashes): a Raspberry Pi 4 cpuinfo is bind-mounted over
# it; and with qemu's default CPU model oneDNN dies with SIGILL: QEMU_CPU names a real core.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
BASE=${1:-${TMPDIR:-/tmp}/edge-opt-arm64}
[ "${1:-}" = down ] && BASE=${TMPDIR:-/tmp}/edge-opt-arm64
R=$BASE/rootfs
SRC=$(cd "$(dirname "$0")/.." && pwd)

down() {
    for m in "$R/proc/cpuinfo" "$R/proc" "$R/sys" "$R/dev"; do
        mountpoint -q "$m" 2>/dev/null && umount -R "$m" || true
    done
}
if [ "${1:-}" = down ] || [ "${2:-}" = down ]; then down; exit 0; fi
trap down EXIT

mirror() {  # the Debian mirror this host's apt already uses (one-line or deb822 sources)
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk '/^deb /{ for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }'
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk '/^URIs:/{print $2; exit}'
}
MIRROR=${MIRROR:-$(mirror | head -n 1)}
[ -n "$MIRROR" ] || { echo "no Debian mirror in the apt sources; set MIRROR=..." >&2; exit 1; }

echo "== 1. arm64 userland in $R (mirror $MIRROR)"
mkdir -p "$BASE"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static debootstrap binfmt-support >/dev/null
mountpoint -q /proc/sys/fs/binfmt_misc || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
if [ ! -x "$R/usr/bin/python3" ]; then
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,git bookworm "$R" "$MIRROR" \
        > "$BASE/debootstrap.log" || { tail -n 20 "$BASE/debootstrap.log"; exit 1; }
fi
cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$R" update-ca-certificates >/dev/null
cp /etc/resolv.conf "$R/etc/resolv.conf"
# The host's pip configuration (its index), with the guest's CA bundle as the certificate.
python3 - "$R/etc/pip.conf" <<'EOF'
import configparser, sys
conf = configparser.ConfigParser()
conf.read("/etc/pip.conf")
if not conf.has_section("global"):
    conf.add_section("global")
conf.set("global", "cert", "/etc/ssl/certs/ca-certificates.crt")
with open(sys.argv[1], "w") as out:
    conf.write(out)
EOF
rm -rf "$R/root/edge-opt"
git clone -q "$SRC" "$R/root/edge-opt"
echo "   edge-opt at $(git -C "$R/root/edge-opt" rev-parse --short HEAD) (committed state only)"

down
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys" && mount --make-rslave "$R/sys"
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev"
python3 - "$BASE/cpuinfo-pi4" <<'EOF'
import os, sys
core = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
        "CPU revision\t: 3\n")
text = "\n".join(core.format(i=i) for i in range(os.cpu_count() or 1))
text += "\nHardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
open(sys.argv[1], "w").write(text)
EOF
mount --bind "$BASE/cpuinfo-pi4" "$R/proc/cpuinfo"

inchroot() {  # QEMU_CPU=... inchroot 'command': in the clone, with a clean environment
    env -i HOME=/root PATH=/root/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 TERM=dumb COLUMNS=120 QEMU_CPU="${QEMU_CPU:-cortex-a76}" \
        ${OMP_NUM_THREADS:+OMP_NUM_THREADS=$OMP_NUM_THREADS} \
        /usr/sbin/chroot "$R" /bin/sh -c "cd /root/edge-opt && $*"
}

echo "== 2. install as docs/install.md says for an Arm board"
if [ ! -x "$R/root/venv/bin/edge-opt" ]; then
    start=$(date +%s)
    inchroot 'python3 -m venv /root/venv && pip install -q -c constraints.txt -e ".[executorch]" "pytest>=8"'
    echo "   installed in $(( $(date +%s) - start )) s (emulated)"
fi
inchroot 'edge-opt --version && python -c "import torch; print(\"torch\", torch.__version__, torch.backends.quantized.supported_engines)"'

failures=0
check_run() {  # check_run OUT: completed, qnnpack int8 built, an Arm CPU described
    if inchroot "python - $1" <<'EOF'
import json, sys
out = sys.argv[1]
result = json.load(open(f"{out}/run_result.json"))
env, rows = result["environment"], result["sweep"]
int8 = [r for r in rows if r["precision"] == "int8"]
problems = []
if json.load(open(f"{out}/run_status.json"))["status"] != "complete":
    problems.append("the run did not complete")
if env["quantized_engine"] != "qnnpack":
    problems.append(f"int8 engine {env['quantized_engine']}, not qnnpack")
if not int8 or any(r["status"] != "ok" for r in int8):
    problems.append("int8 candidates: " + ", ".join(f"{r['candidate_id']} {r['status']}" for r in int8))
if "Cortex-A72" not in env["cpu"]["model"] or env["cpu"]["machine"] != "aarch64":
    problems.append(f"CPU described as {env['cpu']['model']!r} ({env['cpu']['machine']})")
print(f"   CPU: {env['cpu']['model']}; ISA: {', '.join(k for k, v in env['cpu']['isa'].items() if v)}")
print(f"   int8: {', '.join(r['candidate_id'] + ' ' + r['status'] for r in int8)}; "
      f"recommended {result['recommendation']['candidate_id']}; target {result['recommendation']['target']['target']}")
print("   " + ("; ".join(problems) if problems else "ok"))
sys.exit(1 if problems else 0)
EOF
    then :; else failures=$((failures + 1)); fi
}

echo "== 3. emulated Cortex-A72 (Raspberry Pi 4, Armv8.0)"
if QEMU_CPU=cortex-a72 inchroot 'edge-opt validate configs/quick.yaml >/dev/null 2>/root/a72-validate.err'; then
    echo "   validate with 2 threads passed: this torch build runs on Armv8.0 with threads"
else
    # Past torch's own emulation notice (MIDR_EL1), an error header and its one problem line.
    grep -v MIDR_EL1 "$R/root/a72-validate.err" > "$BASE/a72-validate.err" || true
    echo "   validate refused:"; sed 's/^/     /' "$BASE/a72-validate.err"
    if [ "$(grep -c . "$BASE/a72-validate.err")" -gt 2 ] ||
        ! grep -q "cannot run this torch build" "$BASE/a72-validate.err"; then
        echo "   FAIL: not the one-line Armv8.0 refusal"; failures=$((failures + 1))
    fi
fi
start=$(date +%s)
if QEMU_CPU=cortex-a72 OMP_NUM_THREADS=1 inchroot 'edge-opt run configs/quick.yaml -o /root/out-a72 --overwrite -q --set train_threads=1 --set benchmark_threads=1 --set device=auto'; then
    echo "   quick run: $(( $(date +%s) - start )) s (emulated)"
    check_run /root/out-a72
else
    echo "   FAIL: the quick run on the A72 failed"; failures=$((failures + 1))
fi

echo "== 4. emulated Cortex-A76 (Raspberry Pi 5, Armv8.2), the quick config as shipped"
start=$(date +%s)
if QEMU_CPU=cortex-a76 inchroot 'edge-opt run configs/quick.yaml -o /root/out-a76 --overwrite -q --set device=auto'; then
    echo "   quick run: $(( $(date +%s) - start )) s (emulated)"
    check_run /root/out-a76
else
    echo "   FAIL: the quick run on the A76 failed"; failures=$((failures + 1))
fi

echo "== 5. quantization and runtime tests (Cortex-A76)"
if QEMU_CPU=cortex-a76 inchroot 'python -m pytest -q -p no:cacheprovider -m "not slow" tests/compress tests/runtimes >/root/tests.log 2>&1; rc=$?; tail -n 3 /root/tests.log; exit $rc'; then :; else
    echo "   FAIL: tests"; failures=$((failures + 1))
fi

[ "$failures" = 0 ] && echo "PASS (timings above are QEMU's, not an Arm core's)" || { echo "FAIL ($failures)"; exit 1; }
