"""Feature matching: which strategy suits the photos, and running it (with geometric verification)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pycolmap

from photosplat_colmap import devices, mapping
from photosplat_colmap.capture import Prepared
from photosplat_colmap.progress import SfmProgress, chunk_size
from photosplat_colmap.types import SfmOptions

# Exhaustive matching is the most robust choice and still cheap up to about this many images.
EXHAUSTIVE_MAX_IMAGES = 100
# Beyond this, a failed sequential/retrieval matching is not retried exhaustively (hours on CPU).
EXHAUSTIVE_FALLBACK_MAX_IMAGES = 400
SEQUENTIAL_OVERLAP = 15
# COLMAP's exhaustive matcher takes about half the time of the same pairs given as a list (buddha's
# 67 photos at 960x540, 2211 pairs: 3.8 s against 7.7 s on 16 cores), but says nothing until it is
# done: sets up to this size (4950 pairs: seconds on a 16-core host) are matched in one call, larger
# ones (the exhaustive fallback goes to EXHAUSTIVE_FALLBACK_MAX_IMAGES) as pair lists, for progress.
EXHAUSTIVE_ONE_CALL_MAX_IMAGES = 100
# Matching runs in chunks only to report progress; every call has a fixed cost (threads, the
# database, with CUDA its GPU contexts), so a chunk is never smaller than this.
MATCHING_MIN_PAIRS_PER_CALL = 1000

_FRAME_NAME = re.compile(r"^(.*?)(\d+)\.[A-Za-z]+$")


def choose_matcher(kept: list[Prepared], options: SfmOptions) -> tuple[str, str]:
    """The matching strategy and why.

    - the frames of a video capture: sequential (they come in order, each overlapping the next);
    - up to ~100 photos: exhaustive, whatever the order (all pairs: the most robust, still cheap);
    - names that number consecutive frames (``frame_00012.jpg``, a video's frames): sequential with
      a quadratic overlap, so loops close at growing distances without a vocabulary tree;
    - otherwise a vocabulary tree when one is installed (retrieval for large unordered sets);
    - otherwise exhaustive up to a few hundred photos, beyond that sequential in name order (phones
      name photos by time) with loop detection off, since it needs the vocabulary tree too.
    GPS-spatial pairs are not used: ingest strips GPS before SfM for privacy.
    """
    if options.matcher != "auto":
        return options.matcher, "requested"
    if options.video:
        return "sequential", "frames of one video, in order"
    n = len(kept)
    if n <= EXHAUSTIVE_MAX_IMAGES:
        return "exhaustive", f"{n} photos <= {EXHAUSTIVE_MAX_IMAGES}"
    if looks_like_video_frames([p.photo.original_name or p.photo.name for p in kept]):
        return "sequential", "names number consecutive video frames"
    if options.vocab_tree is not None and options.vocab_tree.is_file():
        return "vocabtree", f"{n} photos, vocabulary tree {options.vocab_tree.name}"
    if n <= EXHAUSTIVE_FALLBACK_MAX_IMAGES:
        return "exhaustive", f"{n} photos, no vocabulary tree installed"
    return "sequential", f"{n} photos, no vocabulary tree: neighbours in name order"


def looks_like_video_frames(names: list[str]) -> bool:
    """Same prefix, numbers that mostly step by one: extracted frames (or a burst), in order."""
    parsed = [_FRAME_NAME.match(n) for n in sorted(names)]
    if len(names) < 10 or any(m is None for m in parsed):
        return False
    prefixes = {m.group(1) for m in parsed if m}
    numbers = [int(m.group(2)) for m in parsed if m]
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    return len(prefixes) == 1 and sum(s == 1 for s in steps) >= 0.9 * len(steps)


def match(
    database: Path, matcher: str, options: SfmOptions, names: list[str], progress: SfmProgress | None = None
) -> None:
    """Match with ``matcher``; ``progress`` reports per chunk where the matcher allows it."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.num_threads
    device = devices.sift_device(options)
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = mapping.RANDOM_SEED
    db = str(database)
    in_chunks = progress is not None and len(names) > EXHAUSTIVE_ONE_CALL_MAX_IMAGES and all(" " not in n for n in names)
    if matcher == "exhaustive" and in_chunks:
        assert progress is not None
        _match_pairs_in_chunks(
            database, list(itertools.combinations(names, 2)), matching, verification, device, progress
        )
    elif matcher == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=matching, verification_options=verification, device=device)
    elif matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = SEQUENTIAL_OVERLAP
        pairing.quadratic_overlap = True
        pairing.num_threads = options.num_threads
        # Loop closure needs a vocabulary tree; none is downloaded at run time.
        if options.vocab_tree is not None and options.vocab_tree.is_file():
            pairing.loop_detection = True
            pairing.vocab_tree_path = str(options.vocab_tree)
        pycolmap.match_sequential(
            db, matching_options=matching, pairing_options=pairing, verification_options=verification, device=device
        )
    elif matcher == "vocabtree":
        if options.vocab_tree is None:
            raise ValueError("vocabtree matching needs SfmOptions.vocab_tree")
        pairing = pycolmap.VocabTreePairingOptions()
        pairing.vocab_tree_path = str(options.vocab_tree)
        pairing.num_threads = options.num_threads
        pycolmap.match_vocabtree(
            db, matching_options=matching, pairing_options=pairing, verification_options=verification, device=device
        )
    else:
        raise ValueError(f"unknown matcher {matcher!r}")


def _match_pairs_in_chunks(
    database: Path,
    pairs: list[tuple[str, str]],
    matching: pycolmap.FeatureMatchingOptions,
    verification: pycolmap.TwoViewGeometryOptions,
    device: pycolmap.Device,
    progress: SfmProgress,
) -> None:
    """Exhaustive matching as ~10 explicit pair lists, so that progress moves through the pairs
    (COLMAP's own exhaustive matcher reports nothing until it is done)."""
    pair_file = database.parent / "pairs.txt"
    size = chunk_size(len(pairs), MATCHING_MIN_PAIRS_PER_CALL)
    for start in range(0, len(pairs), size):
        progress.step("matching", start / len(pairs), pairs_matched=start, pairs=len(pairs))
        pair_file.write_text("\n".join(f"{a} {b}" for a, b in pairs[start : start + size]) + "\n")
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        pycolmap.match_image_pairs(
            str(database),
            matching_options=matching,
            pairing_options=pairing,
            verification_options=verification,
            device=device,
        )


def num_verified_pairs(database: Path) -> int:
    db = pycolmap.Database.open(str(database))
    try:
        # Only pairs that passed geometric verification have a two-view geometry
        # (num_verified_image_pairs counts every pair that was tried).
        return len(db.read_two_view_geometries()[0])
    finally:
        db.close()
