"""Cameras in COLMAP's database. Pairs are verified with one camera per photo (pycolmap 4.2 verifies
the pairs of a shared camera nearly serially); a capture from one device is then mapped on one
shared camera, since one set of intrinsics maps faster and more accurately.

pycolmap 4.2 has no call that moves an image to another camera or deletes a camera, so these edit
its database tables (images, frames and their data, rigs, cameras), each in one transaction; the
pycolmap pin (<5) and the tests that map after them guard the schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from photosplat_colmap.capture import Prepared
from photosplat_colmap.extraction import set_focal_priors

# COLMAP's sensor type of a camera in its rigs and frames tables (SensorType::CAMERA).
_CAMERA_SENSOR = 0


def from_one_device(kept: list[Prepared]) -> bool:
    """The same EXIF make/model (or none at all, as with frames from one video) and the same size:
    one shared camera for mapping. Photos from different devices keep one camera each, since
    sharing intrinsics between them breaks the model."""
    return len({(p.photo.camera, p.width, p.height) for p in kept}) == 1


def share_one_camera(database: Path, kept: list[Prepared]) -> None:
    """After matching: every photo of a one-device capture on the first photo's camera (with the
    median EXIF focal prior of all), so that mapping refines one set of intrinsics."""
    if len(kept) < 2 or not from_one_device(kept):
        return
    merge_cameras(database)
    set_focal_priors(database, kept)


def merge_cameras(database: Path) -> None:
    """Every photo on the first photo's camera, the other cameras and their rigs deleted."""
    with closing(sqlite3.connect(database)) as sql, sql:
        keep = sql.execute("SELECT MIN(camera_id) FROM images").fetchone()[0]
        rig = sql.execute(
            "SELECT rig_id FROM rigs WHERE ref_sensor_id = ? AND ref_sensor_type = ?", (keep, _CAMERA_SENSOR)
        ).fetchone()[0]
        sql.execute("UPDATE images SET camera_id = ?", (keep,))
        sql.execute("UPDATE frame_data SET sensor_id = ? WHERE sensor_type = ?", (keep, _CAMERA_SENSOR))
        sql.execute("UPDATE frames SET rig_id = ?", (rig,))
        sql.execute("DELETE FROM rig_sensors WHERE rig_id <> ?", (rig,))
        sql.execute("DELETE FROM rigs WHERE rig_id <> ?", (rig,))
        sql.execute("DELETE FROM cameras WHERE camera_id <> ?", (keep,))


def camera_per_photo(database: Path) -> bool:
    """Undo :func:`merge_cameras` before matching again (a fallback's exhaustive re-matching): every
    photo gets its own copy of its shared camera, so that its pairs are verified in parallel.
    Whether any camera was shared."""
    with closing(sqlite3.connect(database)) as sql, sql:
        shared = sql.execute("SELECT camera_id, COUNT(*) FROM images GROUP BY camera_id HAVING COUNT(*) > 1").fetchall()
        for camera_id, _ in shared:
            camera = sql.execute(
                "SELECT model, width, height, params, prior_focal_length FROM cameras WHERE camera_id = ?", (camera_id,)
            ).fetchone()
            images = sql.execute("SELECT image_id FROM images WHERE camera_id = ? ORDER BY image_id", (camera_id,))
            for (image_id,) in images.fetchall()[1:]:
                _give_own_camera(sql, image_id, camera)
    return bool(shared)


def _give_own_camera(sql: sqlite3.Connection, image_id: int, camera: tuple) -> None:
    """A copy of ``camera`` (its row's values) for the image, in a rig of its own, as import makes."""
    camera_id = sql.execute(
        "INSERT INTO cameras (model, width, height, params, prior_focal_length) VALUES (?, ?, ?, ?, ?)", camera
    ).lastrowid
    rig = sql.execute("INSERT INTO rigs (ref_sensor_id, ref_sensor_type) VALUES (?, ?)", (camera_id, _CAMERA_SENSOR)).lastrowid
    sql.execute("UPDATE images SET camera_id = ? WHERE image_id = ?", (camera_id, image_id))
    (frame,) = sql.execute(
        "SELECT frame_id FROM frame_data WHERE data_id = ? AND sensor_type = ?", (image_id, _CAMERA_SENSOR)
    ).fetchone()
    sql.execute("UPDATE frames SET rig_id = ? WHERE frame_id = ?", (rig, frame))
    sql.execute("UPDATE frame_data SET sensor_id = ? WHERE frame_id = ? AND data_id = ?", (camera_id, frame, image_id))
