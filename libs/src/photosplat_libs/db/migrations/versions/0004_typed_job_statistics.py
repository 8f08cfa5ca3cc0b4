"""jobs: typed statistics (stats -> statistics, metrics -> held_out, progress_attempt column)

The free dicts ``stats`` and ``metrics`` become the JSON of the typed models in
``photosplat_libs.db.job_statistics``: ``statistics`` (worker, latest progress, curve, SfM figures,
training timings, thumbnail, home view) and ``held_out`` (psnr, ssim). The attempt the progress
belongs to was a key of ``stats``: it gets its own column. Each row is converted here, with the
shapes as they were at this revision (this file must not follow later changes of the models):
what does not fit a model (a key no producer wrote) is dropped, never invented.

Columns are renamed in place (ALTER TABLE ... RENAME COLUMN, SQLite 3.25+): a batch copy of
``jobs`` on SQLite would cascade-delete the rows that reference it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""
from __future__ import annotations

from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

STAGES = ('upload', 'validate', 'sfm', 'train', 'export')
PROGRESS_FLOATS = ('loss', 'psnr', 'eval_psnr')
PROGRESS_INTS = ('step', 'gaussians', 'images', 'extracted', 'pairs', 'pairs_matched', 'registered')
SFM_STEPS = ('capture', 'extraction', 'matching', 'mapping', 'undistortion', 'known_poses')
SFM_HEADLINE = {'registered_images': int, 'total_images': int, 'points': int, 'reprojection_error': float}
TRAINING_TIMINGS = ('download_seconds', 'train_seconds', 'train_stage_seconds', 'upload_seconds', 'total_seconds')


def _jobs(*columns: str) -> sa.TableClause:
    return sa.table('jobs', sa.column('id', sa.Uuid()), *(sa.column(c, sa.JSON()) for c in columns),
                    sa.column('progress_attempt', sa.Integer()))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _latest(old: Any) -> dict[str, Any] | None:
    old = _dict(old)
    if old.get('stage') not in STAGES:
        return None
    if 'step' not in old and _whole(old.get('iteration')):
        old = {**old, 'step': old['iteration']}
    latest: dict[str, Any] = {'stage': old['stage']}
    latest.update({k: float(old[k]) for k in PROGRESS_FLOATS if _number(old.get(k))})
    latest.update({k: int(old[k]) for k in PROGRESS_INTS if _whole(old.get(k))})
    return latest


def _curve(old: Any) -> list[dict[str, Any]]:
    points = old if isinstance(old, list) else []
    return [
        {'step': int(p['step']), **{k: float(p[k]) if _number(p.get(k)) else None for k in ('loss', 'psnr')}}
        for p in points
        if isinstance(p, dict) and _whole(p.get('step'))
    ]


def _sfm(old: Any) -> dict[str, Any] | None:
    old = _dict(old)
    if not all(_number(old.get(k)) for k in SFM_HEADLINE):
        return None
    sfm: dict[str, Any] = {k: kind(old[k]) for k, kind in SFM_HEADLINE.items()}
    timings = _dict(old.get('timings'))
    sfm['timings'] = {k: float(timings[k]) for k in SFM_STEPS if _number(timings.get(k))}
    if _number(old.get('mean_track_length')):
        sfm['mean_track_length'] = float(old['mean_track_length'])
    if _whole(old.get('blurry_removed')):
        sfm['blurry_removed'] = int(old['blurry_removed'])
    for key in ('matcher', 'mapper'):
        if isinstance(old.get(key), str):
            sfm[key] = old[key]
    for key in ('warnings', 'attempts'):
        if isinstance(old.get(key), list):
            sfm[key] = [str(item) for item in old[key]]
    return sfm


def _training_timings(old: Any) -> dict[str, Any] | None:
    old = _dict(old)
    if not all(_number(old.get(k)) for k in TRAINING_TIMINGS):
        return None
    timings: dict[str, Any] = {k: float(old[k]) for k in TRAINING_TIMINGS}
    timings['gpu_seconds'] = float(old['gpu_seconds']) if _number(old.get('gpu_seconds')) else None
    return timings


def _home_view(old: Any) -> dict[str, Any] | None:
    old = _dict(old)
    vectors = [old.get(k) for k in ('position', 'target', 'up')]
    if not all(isinstance(v, list) and len(v) == 3 and all(map(_number, v)) for v in vectors):
        return None
    fov = old.get('fov_y_deg')
    if not (_number(fov) and 0 < fov < 180):
        return None
    position, target, up = ([float(x) for x in v] for v in vectors)
    return {'position': position, 'target': target, 'up': up, 'fov_y_deg': float(fov)}


def _new_row(metrics: Any, stats: Any) -> dict[str, Any]:
    metrics, stats = _dict(metrics), _dict(stats)
    held_out = {k: float(metrics[k]) if _number(metrics.get(k)) else None for k in ('psnr', 'ssim')}
    statistics = {
        'worker': stats['worker'] if isinstance(stats.get('worker'), str) else None,
        'latest': _latest(metrics.get('latest')),
        'curve': _curve(stats.get('curve')),
        'sfm': _sfm(stats.get('sfm')),
        'timings': _training_timings(stats.get('timings')),
        'thumbnail_key': stats['thumbnail_key'] if isinstance(stats.get('thumbnail_key'), str) else None,
        'home_view': _home_view(stats.get('home_view')),
    }
    attempt = stats.get('progress_attempt')
    return {'held_out': held_out, 'statistics': statistics, 'progress_attempt': int(attempt) if _whole(attempt) else 1}


def upgrade() -> None:
    op.add_column('jobs', sa.Column('progress_attempt', sa.Integer(), nullable=False, server_default='1'))
    op.alter_column('jobs', 'metrics', new_column_name='held_out')
    op.alter_column('jobs', 'stats', new_column_name='statistics')
    jobs = _jobs('held_out', 'statistics')
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.held_out, jobs.c.statistics)).all()
    for job_id, metrics, stats in rows:
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(**_new_row(metrics, stats)))


def downgrade() -> None:
    jobs = _jobs('held_out', 'statistics')
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(jobs.c.id, jobs.c.held_out, jobs.c.statistics, jobs.c.progress_attempt)
    ).all()
    for job_id, held_out, statistics, attempt in rows:
        statistics = _dict(statistics)
        latest = statistics.pop('latest', None)
        metrics = {k: v for k, v in _dict(held_out).items() if v is not None}
        if latest:
            metrics['latest'] = {k: v for k, v in latest.items() if v is not None}
        stats = {k: v for k, v in statistics.items() if v not in (None, [])}
        stats['progress_attempt'] = attempt
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(held_out=metrics, statistics=stats))
    op.alter_column('jobs', 'statistics', new_column_name='stats')
    op.alter_column('jobs', 'held_out', new_column_name='metrics')
    op.drop_column('jobs', 'progress_attempt')
