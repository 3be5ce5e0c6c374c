#!/usr/bin/env bash
# Gets the real data sets that can be had from Debian's packages:
# - Fashion-MNIST (full 60k/10k) from Debian's package dataset-fashion-mnist: installed with
#   apt-get when we are root (into /usr/share/datasets/fashion-mnist), else downloaded with
#   `apt-get download` and unpacked into data/fashion-mnist.
# - the UCI 8x8 digits (digits.csv.gz) from Debian's python3-sklearn, into data/digits.
# Then says where to put the sets that only their home sites serve.
set -euo pipefail
cd "$(dirname "$0")/.."

fm_system=/usr/share/datasets/fashion-mnist
fm_local=data/fashion-mnist
if [ -f "$fm_system/train-images-idx3-ubyte.gz" ] || [ -f "$fm_local/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST: present"
elif [ "$(id -u)" = 0 ]; then
  echo "Fashion-MNIST: apt-get install dataset-fashion-mnist"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
elif ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "Fashion-MNIST: not found, and this machine has no apt-get/dpkg-deb to fetch Debian's package." >&2
  echo "  Put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and" >&2
  echo "  t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist in $fm_local/" >&2
  exit 1
else
  echo "Fashion-MNIST: apt-get download dataset-fashion-mnist, unpacked into $fm_local"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb root)
  mkdir -p "$fm_local"
  cp "$tmp"/root/usr/share/datasets/fashion-mnist/*.gz "$fm_local"/
  rm -rf "$tmp"
fi

digits_local=data/digits
if [ -f "$digits_local/digits.csv.gz" ]; then
  echo "UCI digits: present"
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  echo "UCI digits: digits.csv.gz from Debian's python3-sklearn package, into $digits_local"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download python3-sklearn >/dev/null \
    && dpkg-deb --fsys-tarfile python3-sklearn_*.deb | tar -x ./usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz)
  mkdir -p "$digits_local"
  cp "$tmp"/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz "$digits_local"/
  rm -rf "$tmp"
else
  echo "UCI digits: not found; copy sklearn/datasets/data/digits.csv.gz from a scikit-learn install into $digits_local/" >&2
fi

cat <<'TXT'
Sets you bring yourself (their home sites serve them; put them here, or set MIXSWEEP_DATA to
a folder holding these subfolders, or give data.dir in the experiment file):
  data/cifar-10-batches-bin/   data_batch_1..5.bin, test_batch.bin   (cifar-10-binary.tar.gz)
  data/cifar-100-binary/       train.bin, test.bin                   (cifar-100-binary.tar.gz)
  data/mnist/                  {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  data/svhn/                   train_32x32.mat, test_32x32.mat       (ufldl.stanford.edu/housenumbers)
  data/tiny-imagenet-200/      wnids.txt, train/, val/               (tiny-imagenet-200.zip)
TXT
