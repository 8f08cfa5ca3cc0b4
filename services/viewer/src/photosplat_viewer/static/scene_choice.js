// Which of a scene's files the 3D viewer loads, and how Spark is told its type. No imports, so
// that it runs as it is in Node for the tests.

// The web formats (the trainer writes both): the smaller is loaded. A size not known counts as
// larger, and between equals SPZ goes first (read by more viewers than SOG).
const WEB_FORMATS = ["spz", "sog"];
// Spark names a bundled SOG by its own word for it.
const SPARK_FILE_TYPES = { sog: "pcsogszip" };

/** Which file to load, and how many splats of it (null: all). A `wanted` format (`?format=`) is
 * loaded if the scene has it. Otherwise the smaller of SOG and SPZ; `.splat` (kept for old viewers)
 * only when the scene has neither, then over `budget` only its first `budget` splats, which the
 * trainer writes most important first; the PLY only when there is nothing else. */
export function choose(files, gaussians, budget, wanted) {
  const byFormat = Object.fromEntries(files.map((f) => [f.format, f]));
  if (wanted && byFormat[wanted]) return { file: byFormat[wanted], splats: null };
  const size = (f) => (Number.isFinite(f.bytes) ? f.bytes : Infinity);
  const web = WEB_FORMATS.map((format) => byFormat[format]).filter(Boolean);
  if (web.length) {
    const smallest = web.reduce((best, f) => (size(f) < size(best) ? f : best));
    return { file: smallest, splats: null };
  }
  if (byFormat.splat) return { file: byFormat.splat, splats: gaussians && gaussians > budget ? budget : null };
  return byFormat.ply ? { file: byFormat.ply, splats: null } : null;
}

export function sparkFileType(format) {
  return SPARK_FILE_TYPES[format] ?? format;
}
