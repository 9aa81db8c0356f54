#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled sample photos (samples/, Caltech-101, CC BY 4.0):
# embed two photos, index the sample library, search it with photos from outside it and with an
# image inside it, then show the library's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/lookalike
DB=out/demo.db
mkdir -p out
rm -f "$DB" "$DB-wal" "$DB-shm"

echo "== lookalike embed (top-5 ImageNet labels)"
$BIN embed samples/queries/dalmatian_0010.jpg samples/queries/pizza_0010.jpg
echo
echo "== lookalike index samples/library --db $DB"
$BIN index samples/library --db "$DB"
echo
echo "== rerun: incremental, nothing to embed"
$BIN index samples/library --db "$DB"
echo
for q in sunflower_0010 Motorbikes_0010 butterfly_0010; do
  echo "== lookalike search samples/queries/$q.jpg -k 5   (a photo from outside the library)"
  $BIN search "samples/queries/$q.jpg" --db "$DB" -k 5
  echo
done
echo "== lookalike search --path samples/library/dalmatian/image_0001.jpg --metric chi2   (an image in the library)"
$BIN search --path samples/library/dalmatian/image_0001.jpg --db "$DB" -k 5 --metric chi2
echo
echo "== lookalike info"
$BIN info --db "$DB"
