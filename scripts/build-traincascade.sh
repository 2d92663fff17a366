#!/usr/bin/env bash
# Build OpenCV 3.4's opencv_traincascade (the trainer Hirano et al. 2019 used) and cache it.
#
# Neither Debian nor any PyPI wheel ships it, but the source distribution of
# opencv-python-headless==3.4.18.65 carries OpenCV 3.4.18 with apps/traincascade. Only the modules
# the trainer needs are built (about four minutes on two cores). The XML it writes loads in
# cv2 4.x's CascadeClassifier.
#
#   scripts/build-traincascade.sh            # prints the path of the cached binary
#   RASCORE_TOOLS=/some/dir scripts/...      # cache elsewhere (default ~/.cache/rascore)
set -euo pipefail

VERSION=3.4.18.65
TOOLS=${RASCORE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rascore}
PREFIX="$TOOLS/opencv-traincascade-$VERSION"
BIN="$PREFIX/bin/opencv_traincascade"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

for tool in cmake ninja g++; do
  command -v "$tool" >/dev/null || { echo "build-traincascade: $tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "build-traincascade: fetching the opencv-python-headless $VERSION source distribution" >&2
# pip prepares an sdist's metadata even to download it, and this one's setup.py needs skbuild.
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check scikit-build numpy setuptools wheel >&2
"$WORK/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  --no-build-isolation -d "$WORK" "opencv-python-headless==$VERSION" 2>&1 | grep -v ignored >&2 || true
ls "$WORK"/opencv-python-headless-*.tar.gz >/dev/null
tar -xzf "$WORK"/opencv-python-headless-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/opencv-python-headless-*/opencv)

echo "build-traincascade: configuring and building (a few minutes)" >&2
cmake -S "$SRC" -B "$WORK/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DCMAKE_CXX_FLAGS="-w" \
  -DBUILD_LIST=core,imgproc,imgcodecs,objdetect,ml,features2d,calib3d,flann,highgui,videoio,apps \
  -DBUILD_opencv_apps=ON -DBUILD_opencv_python2=OFF -DBUILD_opencv_python3=OFF \
  -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF \
  -DBUILD_DOCS=OFF -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_OPENCL=OFF -DWITH_FFMPEG=OFF \
  -DWITH_GSTREAMER=OFF -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_V4L=OFF -DWITH_1394=OFF \
  -DWITH_PROTOBUF=OFF -DWITH_EIGEN=OFF -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENEXR=OFF \
  -DWITH_JASPER=OFF -DWITH_OPENJPEG=OFF -DWITH_IMGCODEC_HDR=OFF -DWITH_IMGCODEC_SUNRASTER=OFF \
  -DWITH_TBB=OFF -DWITH_OPENMP=OFF -DWITH_PTHREADS_PF=ON -DBUILD_ZLIB=ON -DBUILD_PNG=ON \
  -DBUILD_JPEG=ON >"$WORK/cmake.log" 2>&1 || { tail -40 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target opencv_traincascade >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$PREFIX/bin"
cp "$WORK/build/bin/opencv_traincascade" "$BIN"
echo "$BIN"
